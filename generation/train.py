"""Training loop with progress bars, and checkpoints cached by a hash of everything that made them."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import LOADED, DefenseConfig, GenerationConfig, sha256_json
from .defenses import TrainContext, build_defense
from .manifest import sha256_file as file_sha256
from .metrics import accuracy
from .models import build_model
from .normalization import normalized
from .precision import attacking
from .user_models import file_format, load_model

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 3  # 3: paper gap_cnn, gradreg_adv and Int-Adv; 2: seeded before the model is built


def cache_dir() -> Path:
    return Path(os.environ.get("ADVLEGIT_CACHE_DIR", Path.home() / ".cache" / "advlegit"))


@dataclass
class ModelSpec:
    """Everything that determines a trained model; its hash is the cache key."""

    name: str
    role: str                      # "defended", "rater" or "replicate" (another seed of a defended model)
    defense: str                   # registry kind
    defense_params: dict[str, Any]
    architecture: str
    width: float
    dropout: float
    steps: int
    batch_size: int
    lr: float
    seed: int
    split: str                     # which data split it trains on
    data: dict[str, Any]           # data config + dataset hash
    batch_norm: bool = False       # ross_cnn only (model.batch_norm)
    load: dict[str, Any] | None = None  # a loaded model (generation/user_models.py): file and settings
    precision: str = "fp32"        # resolved ("fp32" | "bf16"): bf16 training gives other weights
    # defenses match_accuracy_of: {"of": model name, "every": steps}; the pipeline adds the target's
    # validation accuracy and checkpoint hash before training (so they are part of the key)
    match: dict[str, Any] | None = None

    def key(self) -> str:
        fields = asdict(self)
        for optional in ("load", "match"):  # trained models keep the keys of their cached checkpoints
            if fields[optional] is None:
                del fields[optional]
        if fields["precision"] == "fp32":  # so do fp32 ones: only bf16 adds to the key
            del fields["precision"]
        return sha256_json({"format": CHECKPOINT_FORMAT, **fields, "name": None})


@dataclass
class TrainedModel:
    spec: ModelSpec
    model: nn.Module
    checkpoint: Path
    checkpoint_sha256: str
    cached: bool
    matched: dict[str, Any] | None = None  # an accuracy-matched model: where it stopped (match_outcome)


def data_key(data) -> dict[str, Any]:
    """The [data] settings as cache keys hold them: n_validation only when set, so the models and results
    cached before that key existed are found again."""
    key = asdict(data)
    if not key.get("n_validation"):
        key.pop("n_validation", None)
    return key


def model_specs(cfg: GenerationConfig, dataset_sha256: str, precision: str = "fp32") -> list[ModelSpec]:
    """precision: the resolved one (generation/precision.py resolve), part of every trained model's key."""
    data = {**data_key(cfg.data), "sha256": dataset_sha256}
    m, t = cfg.model, cfg.training
    bn = lambda arch: m.batch_norm and arch == "ross_cnn"  # noqa: E731  (gap_cnn has none)
    specs = []
    seed = t.primary_seed()
    replicates = []
    for d in cfg.defenses:
        if d.kind == LOADED:
            specs.append(_loaded_spec(d, data))
            continue
        arch = d.architecture or m.architecture
        match = {"of": d.match_accuracy_of, "every": d.match_every} if d.match_accuracy_of else None
        specs.append(ModelSpec(d.name, "defended", d.kind, d.params, arch, m.width, m.dropout,
                               d.train_steps or t.steps, t.batch_size, t.lr, seed, "train", data, bn(arch),
                               precision=precision, match=match))
        replicates += [dataclasses.replace(specs[-1], name=replicate_name(d.name, s), role="replicate", seed=s)
                       for s in t.seeds[1:]]
    for i in range(cfg.raters.count):
        arch = cfg.raters.architecture or m.architecture
        specs.append(ModelSpec(f"rater{i + 1}" if cfg.raters.count > 1 else "rater", "rater", "normal", {},
                               arch, m.width, m.dropout, cfg.raters.steps or t.steps, t.batch_size, t.lr,
                               seed + 1000 + i, "rater", data, bn(arch), precision=precision))
    return specs + replicates


def replicate_name(defense: str, seed: int) -> str:
    """The model of `defense` trained with another of training.seeds (never attacked for stimuli)."""
    return f"{defense}@seed{seed}"


def _loaded_spec(d: DefenseConfig, data: dict[str, Any]) -> ModelSpec:
    load = {"load": d.load, "architecture": d.architecture, "factory": d.factory,
            "factory_args": d.factory_args, "mean": d.mean, "std": d.std}
    load["format"] = file_format(load)
    arch = d.architecture or d.factory or "torchscript"
    return ModelSpec(d.name, "defended", LOADED, {}, arch, 1.0, 0.0, 0, 0, 0.0, 0, "external", data, load=load)


def new_model(spec: ModelSpec, image_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    net = build_model(spec.architecture, in_channels=image_shape[0], num_classes=num_classes,
                      image_size=image_shape[-1], width=spec.width, dropout=spec.dropout,
                      batch_norm=spec.batch_norm)
    # data.mean / data.std: a layer inside the model, so attacks work on [0, 1] pixels.
    return normalized(net, spec.data.get("mean") or [], spec.data.get("std") or [], image_shape[0])


def fit(model: nn.Module, loss_fn: Callable[..., torch.Tensor], images: torch.Tensor, labels: torch.Tensor,
        *, steps: int, batch_size: int, lr: float, seed: int, desc: str, precision: str = "fp32",
        stop: Callable[[int, nn.Module], bool] | None = None, check_every: int = 0) -> nn.Module:
    """Adam on random mini-batches (sampled with a seeded generator) for a fixed number of steps.
    precision "bf16": the loss (forward passes, and any input gradients it takes) under autocast with
    fp32 logits; the weight backward and Adam's update stay outside it, on the fp32 master weights.
    stop(steps done, model in eval mode), asked after every `check_every` steps: True ends training."""
    device = images.device
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    bar = tqdm(range(steps), desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0)
    for step in bar:
        idx = torch.randint(len(labels), (batch_size,), generator=gen).to(device)
        with attacking(precision, device, model):
            loss = loss_fn(model, images[idx], labels[idx], step).float()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}; lower the "
                                     "learning rate or the regularization strength")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if stop is not None and (step + 1) % check_every == 0:
            done = stop(step + 1, model.eval())
            model.train()
            if done:
                break
    return model.eval()


def train_or_load(spec: ModelSpec, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                  device: torch.device, validation: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainedModel:
    """Load the checkpoint for this spec from the cache, or train it and store it there.
    validation: the held-out split an accuracy-matched spec (spec.match) is stopped on."""
    if spec.load is not None:  # your own model: loaded, never trained or cached
        path = Path(spec.load["load"]).expanduser()
        model = load_model(spec.load, tuple(images.shape[1:]), num_classes, device)
        log.info("model %s: loaded %s (%s)", spec.name, path, spec.load["format"])
        return TrainedModel(spec, model, path, file_sha256(path), cached=True)
    folder = cache_dir() / "models"
    folder.mkdir(parents=True, exist_ok=True)
    key = spec.key()
    path = folder / f"{key}.pt"
    image_shape = tuple(images.shape[1:])
    # Seed before building: the initial weights are the spec's, whatever ran earlier in the process.
    torch.manual_seed(spec.seed)
    model = new_model(spec, image_shape, num_classes).to(device)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
            log.info("model %s: reused cached checkpoint %s", spec.name, path.name[:12])
            matched = json.loads((folder / f"{key}.match.json").read_text()) if spec.match else None
            return TrainedModel(spec, model.eval(), path, file_sha256(path), cached=True, matched=matched)
        except (RuntimeError, EOFError, OSError) as exc:  # a corrupt cache entry is retrained, not trusted
            log.warning("model %s: cached checkpoint unreadable (%s); retraining", spec.name, exc)
            torch.manual_seed(spec.seed)  # a fresh model, not one a failed load may have half-filled
            model = new_model(spec, image_shape, num_classes).to(device)

    defense = build_defense(spec.defense, spec.defense_params)

    def train_helper(loss_fn, suffix: str) -> nn.Module:
        torch.manual_seed(spec.seed + 1)
        helper = new_model(spec, image_shape, num_classes).to(device)
        return fit(helper, loss_fn, images, labels, steps=spec.steps, batch_size=spec.batch_size,
                   lr=spec.lr, seed=spec.seed + 1, desc=f"{spec.name} ({suffix})", precision=spec.precision)

    defense.prepare(TrainContext(train_model=train_helper, total_steps=spec.steps))
    matching = AccuracyMatch(spec, validation) if spec.match else None
    fit(model, defense.loss, images, labels, steps=spec.steps, batch_size=spec.batch_size, lr=spec.lr,
        seed=spec.seed, desc=spec.name, precision=spec.precision, stop=matching,
        check_every=spec.match["every"] if spec.match else 0)
    matched = matching.outcome(model) if matching else None
    if matched:  # beside the checkpoint, so a cached model still says where it stopped
        (folder / f"{key}.match.json").write_text(json.dumps(matched, indent=2))
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written checkpoint under the key
    (folder / f"{key}.json").write_text(json.dumps(asdict(spec), indent=2, default=str))
    return TrainedModel(spec, model.eval(), path, file_sha256(path), cached=False, matched=matched)


class AccuracyMatch:
    """fit's stop rule for an accuracy-matched model: stop at the first check where the accuracy on
    the validation split reaches spec.match["target_accuracy"] (the matched-to model's, same split)."""

    def __init__(self, spec: ModelSpec, validation: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        if validation is None or not len(validation[1]):
            raise ValueError(f"model {spec.name}: match_accuracy_of needs the validation split (data.n_validation)")
        self.spec, self.validation = spec, validation
        self.target = float(spec.match["target_accuracy"])
        self.checks: list[tuple[int, float]] = []

    def __call__(self, steps_done: int, model: nn.Module) -> bool:
        # rounded as the target is: float32 means of equal counts (29/100) may differ in the last bits
        acc = round(accuracy(model, *self.validation), 6)
        self.checks.append((steps_done, acc))
        log.info("model %s: validation accuracy %.3f after %d steps (target %.3f)", self.spec.name, acc,
                 steps_done, self.target)
        return acc >= self.target

    def outcome(self, model: nn.Module) -> dict[str, Any]:
        """Where training stopped. Not reached: it ran all its steps, and the accuracy is the final model's."""
        reached = bool(self.checks) and self.checks[-1][1] >= self.target
        if not reached and (not self.checks or self.checks[-1][0] != self.spec.steps):
            self.checks.append((self.spec.steps, round(accuracy(model.eval(), *self.validation), 6)))
        return {"reached": reached, "stopped_at_step": self.checks[-1][0], "accuracy": self.checks[-1][1],
                "target_accuracy": self.target, "checks": [list(c) for c in self.checks]}


def to_tensors(images: np.ndarray, labels: np.ndarray, idx: np.ndarray, device: torch.device):
    return (torch.from_numpy(images[idx]).to(device), torch.from_numpy(labels[idx]).to(device))
