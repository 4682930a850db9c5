"""Choose source digits and targets, hand them to the configured stimulus design (generation/designs),
add control twins, and record what every model says about every image."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .attacks import attack_defaults
from .attacks.base import AttackResult, finish, perturbation_norms
from .config import StimuliConfig
from .metrics import probabilities


@dataclass
class Source:
    index: int            # index into the dataset
    image: torch.Tensor   # (C,H,W), 8-bit quantized
    label: int

    @property
    def id(self) -> str:
        return f"src-{self.index:05d}"


@dataclass
class Stimulus:
    source: Source
    target: int
    defense: str
    image: torch.Tensor
    success: bool
    budget: float | None                 # the epsilon used (None: no epsilon-ball, design "ross")
    norms: dict[str, float]
    params: dict[str, Any]               # what THIS image was made with (attack_params in the manifest)
    design: str = "fixed_budget"
    kind: str = "adversarial"            # adversarial | control_flip | control_noise
    twin: str | None = None              # a control's adversarial twin
    tag: str = ""                        # id/group suffix, e.g. "-e0.1" when fixed_budget has several epsilons
    control: dict[str, Any] | None = None  # how a control was made (norms_matched, moved pixels)
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return f"{self.source.id}-t{self.target}{self.tag}"

    @property
    def id(self) -> str:
        base = f"stim-{self.source.index:05d}-t{self.target}-{self.defense}{self.tag}"
        return base if self.kind == "adversarial" else f"{base}-{self.kind.removeprefix('control_')}"


# The threat norm of each attack, recorded per stimulus as attack_params["norm"].
ATTACK_NORM = {"fgsm": "linf", "tgsm": "linf", "tgsm_iterative": "linf", "pgd_linf": "linf",
               "pgd_l2": "l2", "cw_l2": "l2", "deepfool": "l2", "jsma": "l0"}


def quantize(x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """What a lossless 8-bit PNG will hold: every prediction and norm is measured on this.

    With a reference image already on the 8-bit grid, the perturbation is truncated toward it, so
    quantizing never pushes an image outside the attack's epsilon-ball.
    """
    if reference is None:
        return (x * 255).round() / 255
    steps = torch.trunc((x - reference) * 255 + 1e-4 * torch.sign(x - reference))
    return ((reference * 255).round() + steps).clamp(0, 255) / 255


def choose_sources(x: torch.Tensor, y: torch.Tensor, dataset_indices: np.ndarray,
                   defended: dict[str, nn.Module], cfg: StimuliConfig, num_classes: int) -> list[Source]:
    """per_class digits of every class, drawn with the stimuli seed, that every defended model
    classifies correctly (when require_correct), so that 'fooled' means something for each."""
    ok = torch.ones(len(y), dtype=torch.bool)
    if cfg.require_correct:
        for model in defended.values():
            ok &= (probabilities(model, x).argmax(1) == y).cpu()
    rng = np.random.default_rng(cfg.seed)
    chosen: list[Source] = []
    y_np = y.cpu().numpy()
    for c in range(num_classes):
        pool = np.flatnonzero((y_np == c) & ok.numpy())
        if len(pool) < cfg.per_class:
            raise ValueError(f"stimuli.per_class = {cfg.per_class} but only {len(pool)} test digits of class "
                             f"{c} are classified correctly by every defended model; lower it or train longer")
        for i in sorted(rng.choice(pool, size=cfg.per_class, replace=False)):
            chosen.append(Source(int(dataset_indices[i]), quantize(x[i]), int(y_np[i])))
    return chosen


def choose_targets(sources: list[Source], cfg: StimuliConfig, num_classes: int) -> list[tuple[Source, int]]:
    rng = np.random.default_rng(cfg.seed + 1)
    pairs = []
    for s in sources:
        others = [c for c in range(num_classes) if c != s.label]
        if cfg.targets == "next":
            targets = [(s.label + 1) % num_classes]
        elif cfg.targets == "all":
            targets = others
        else:
            targets = sorted(rng.choice(others, size=min(cfg.n_targets, len(others)), replace=False).tolist())
        pairs.extend((s, int(t)) for t in targets)
    return pairs


def stimulus_norms(x: torch.Tensor, images: torch.Tensor) -> list[dict[str, float]]:
    """L2, L-inf, L0 of each image's perturbation, in float64 (so equal 8-bit perturbations give
    equal numbers whatever the pixel order)."""
    norms = perturbation_norms(x.double(), images.double())
    return [{k: float(v[j]) for k, v in norms.items()} for j in range(len(x))]


def base_params(cfg: StimuliConfig) -> dict[str, Any]:
    """The attack's defaults overridden by the config (the budget is set by the design)."""
    params = {**attack_defaults(cfg.attack), **cfg.attack_params}
    if "seed" in params and "seed" not in cfg.attack_params:
        params["seed"] = cfg.seed
    return params


def resolved_step(params: dict[str, Any], budget: torch.Tensor | float) -> torch.Tensor | float | None:
    """The step size the attack will use: its own rule (2.5 * eps / steps) made explicit, so each
    stimulus records the number."""
    if "step_size" not in params:
        return None
    if params["step_size"] is not None:
        return params["step_size"]
    return 2.5 * budget / params["steps"]


def stimulus_params(cfg: StimuliConfig, params: dict[str, Any], budget: float | None,
                    step: float | None, **extra: Any) -> dict[str, Any]:
    """attack_params as written for one stimulus: the epsilon and step size it was made with."""
    out = {k: v for k, v in params.items() if k != cfg.budget_param}
    out[cfg.budget_param] = None if budget is None else round(float(budget), 8)
    if "step_size" in params:
        out["step_size"] = None if step is None else round(float(step), 8)
    out["norm"] = ATTACK_NORM.get(cfg.attack, "")
    out["seed"] = params.get("seed", cfg.seed)
    return {**out, **extra}


def run_quantized(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor,
                  params: dict[str, Any], budget_param: str = "epsilon",
                  budget: torch.Tensor | float | None = None) -> AttackResult:
    """One attack call whose images (and so success and norms) are the 8-bit ones people see.
    A tensor budget holds one value per image (the bisection moves each image's budget)."""
    p = dict(params)
    if budget is not None:
        b = budget.view(-1, *([1] * (x.dim() - 1))).to(x.dtype) if torch.is_tensor(budget) else budget
        p[budget_param] = b
        if "step_size" in p:
            p["step_size"] = resolved_step(params, b)
    res = attack(model, x, y, target=target, **p)
    return finish(model, x, quantize(res.images, reference=x), y, target)


def predictions(models: dict[str, nn.Module], images: torch.Tensor) -> list[dict[str, dict[str, Any]]]:
    """Every model's label, confidence and class probabilities on every image."""
    per_model = {n: probabilities(m, images) for n, m in models.items()}
    rows = []
    for i in range(len(images)):
        row = {}
        for n, p in per_model.items():
            probs = p[i]
            row[n] = {"label": int(probs.argmax()), "confidence": round(float(probs.max()), 6),
                      "probs": [round(float(v), 6) for v in probs]}
        rows.append(row)
    return rows


def make_stimuli(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
                 batch_size: int = 128) -> tuple[list[Stimulus], dict[str, Any]]:
    """The configured design against every defense for every (source, target), then the controls.
    Returns the stimuli and the manifest's `stimulus_design` record."""
    from .controls import make_controls
    from .designs import DESIGNS

    stimuli, info = DESIGNS[cfg.design](pairs, defended, cfg, batch_size=batch_size)
    stimuli += make_controls(stimuli, cfg)
    return stimuli, info


def batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def pair_tensors(pairs: list[tuple[Source, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.stack([s.image for s, _ in pairs])
    return (x, torch.tensor([s.label for s, _ in pairs], device=x.device),
            torch.tensor([t for _, t in pairs], device=x.device))
