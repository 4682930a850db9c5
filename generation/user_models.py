"""Your own model: a [[defenses]] entry with `load = "file"` is loaded instead of trained.

Two file kinds:
- TorchScript (`torch.jit.save`): the file holds the architecture; nothing else is needed.
- a state_dict (`torch.save(model.state_dict())`, RobustBench's layout): the weights for one of our
  architectures (`architecture = "wide_resnet_28_10"`) or for your own module (`factory =
  "package.module:function"`, called with `factory_args`). The dict may sit under "state_dict",
  "model_state_dict" or "model", and keys may carry DataParallel's "module." prefix.

`mean`/`std` put the model's input normalization inside it, so attacks and stimuli stay in [0, 1]
pixel space. The file's sha256 is the checkpoint hash in the manifest, as for a trained model.
Every problem is a ModelFileError that names the file.
"""
from __future__ import annotations

import importlib
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import InputNormalization, build_model, has_gap_head

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model")  # where checkpoints nest the weights


class ModelFileError(ValueError):
    """A model file a person named is missing or does not fit; the message names the file."""


class Normalized(nn.Module):
    """model(normalize(x)); keeps a GAP head visible (feature_maps, linear) so CAMs still work."""

    def __init__(self, inner: nn.Module, normalize: nn.Module) -> None:
        super().__init__()
        self.inner, self.normalize = inner, normalize
        self.linear = inner.linear if has_gap_head(inner) else None

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.feature_maps(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(self.normalize(x))


def file_format(load: dict[str, Any]) -> str:
    return "state_dict" if load.get("factory") or load.get("architecture") else "torchscript"


def load_model(load: dict[str, Any], image_shape: tuple[int, ...], num_classes: int,
               device: torch.device) -> nn.Module:
    """The model described by a loaded defense's settings (`load`, `architecture`, `factory`,
    `factory_args`, `mean`, `std`), in eval mode, checked on one input of the data's shape."""
    path = Path(load["load"]).expanduser()
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    if file_format(load) == "torchscript":
        model = _torchscript(path, device)
    else:
        model = _module(load, path, image_shape, num_classes)
        _fill(model, path)
    if load.get("mean"):
        if len(load["mean"]) != image_shape[0]:
            raise ModelFileError(f"{path}: mean/std have {len(load['mean'])} values but the images have "
                                 f"{image_shape[0]} channels")
        model = Normalized(model, InputNormalization(image_shape[0], load["mean"], load["std"]))
    model = model.to(device).eval()
    _probe(model, path, image_shape, num_classes, device)
    return model


def _torchscript(path: Path, device: torch.device) -> nn.Module:
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a TorchScript file (nor a torch.save archive); for a state_dict "
                             "name its architecture or factory")
    try:
        return torch.jit.load(str(path), map_location=device)
    except (RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a TorchScript file ({_first_line(exc)}); for a state_dict "
                             "name its architecture or factory") from None


def _module(load: dict[str, Any], path: Path, image_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if load.get("architecture"):
        return build_model(load["architecture"], in_channels=image_shape[0], num_classes=num_classes,
                           image_size=image_shape[-1])
    module_name, _, attr = load["factory"].partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(f"{path}: factory {load['factory']!r} cannot be imported ({exc})") from None
    try:
        model = factory(**load.get("factory_args", {}))
    except Exception as exc:  # the factory is the person's own code: say whose call failed
        raise ModelFileError(f"{path}: factory {load['factory']!r} failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ModelFileError(f"{path}: factory {load['factory']!r} returned {type(model).__name__}, "
                             "not a torch.nn.Module")
    return model


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- pickle, zip and torch raise many kinds; all mean "not loadable"
        raise ModelFileError(f"{path}: not a state_dict that torch.load can read safely "
                             f"(weights_only): {_first_line(exc)}") from None
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        found = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise ModelFileError(f"{path}: expected a state_dict (name -> tensor), possibly under one of "
                             f"{', '.join(STATE_DICT_KEYS)}; found {found}")
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _fill(model: nn.Module, path: Path) -> None:
    weights = _state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(weights)) if weights[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"missing {_few(missing)}" if missing else "", f"unexpected {_few(unexpected)}" if unexpected else "",
                 f"shape mismatch {_few(wrong)} (file vs model)" if wrong else ""]
        raise ModelFileError(f"{path}: the state_dict does not fit the model: " + "; ".join(p for p in parts if p))
    model.load_state_dict(weights, strict=True)


def _probe(model: nn.Module, path: Path, image_shape: tuple[int, ...], num_classes: int,
           device: torch.device) -> None:
    x = torch.rand(2, *image_shape, device=device)
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 -- the person's model: any failure means it does not fit the data
        raise ModelFileError(f"{path}: the model fails on images of shape {tuple(image_shape)}: "
                             f"{_first_line(exc)}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelFileError(f"{path}: the model returns {shape} for 2 images; it must return logits of "
                             f"shape (N, {num_classes}) for the data's {num_classes} classes")


def _few(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
