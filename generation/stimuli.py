"""Choose source digits and targets, run the same attack and budget against every defense, and
record what every model says about every image."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import attack_defaults, get_attack, until_success
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
    budget: float
    norms: dict[str, float]
    params: dict[str, Any]
    predictions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return f"{self.source.id}-t{self.target}"

    @property
    def id(self) -> str:
        return f"stim-{self.source.index:05d}-t{self.target}-{self.defense}"


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


def attack_params(cfg: StimuliConfig) -> dict[str, Any]:
    params = {**attack_defaults(cfg.attack), **cfg.attack_params}
    if "seed" in params and "seed" not in cfg.attack_params:
        params["seed"] = cfg.seed
    return params


def make_stimuli(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
                 batch_size: int = 128) -> list[Stimulus]:
    """The same attack and budget schedule against every defense for every (source, target)."""
    attack = get_attack(cfg.attack)
    params = attack_params(cfg)
    x_all = torch.stack([s.image for s, _ in pairs])
    y_all = torch.tensor([s.label for s, _ in pairs], device=x_all.device)
    t_all = torch.tensor([t for _, t in pairs], device=x_all.device)
    out: list[Stimulus] = []
    for name, model in tqdm(defended.items(), desc="attack", leave=False, dynamic_ncols=True):
        for i in range(0, len(pairs), batch_size):
            x, y, t = x_all[i:i + batch_size], y_all[i:i + batch_size], t_all[i:i + batch_size]
            if cfg.until_success:
                res = until_success(_quantized(attack), model, x, y, target=t, budgets=cfg.budgets,
                                    budget_param=cfg.budget_param, **{k: v for k, v in params.items()
                                                                      if k != cfg.budget_param})
                budgets = res.budget.tolist()
            else:
                res = _quantized(attack)(model, x, y, target=t, **params)
                budgets = [float(params.get(cfg.budget_param, float("nan")))] * len(x)
            for j in range(len(x)):
                src, tgt = pairs[i + j]
                out.append(Stimulus(src, tgt, name, res.images[j], bool(res.success[j]), budgets[j],
                                    {k: float(v[j]) for k, v in res.norms.items()}, params))
    return out


def _quantized(attack):
    """Wrap an attack so its images (and so its success and norms) are the 8-bit ones people see."""
    from .attacks.base import finish

    def run(model, x, y, *, target=None, **params):
        res = attack(model, x, y, target=target, **params)
        return finish(model, x, quantize(res.images, reference=x), y, target)

    run.__signature__ = inspect.signature(attack)
    return run


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
