"""Saliency maps as pictures: display-ready maps, and one PNG per stimulus per method in the set."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .manifest import sha256_file
from .render import write_png
from .saliency import METHODS

CAM_METHODS = ("cam",)   # need a GAP head (gap_cnn); other methods work on any model


def applies(method: str, model: nn.Module) -> bool:
    gap = hasattr(model, "feature_maps") and isinstance(getattr(model, "linear", None), nn.Linear)
    return gap or method not in CAM_METHODS


def channel_max_abs(attribution: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, H, W): max over channels of |attribution| (= |attribution| for C = 1)."""
    return attribution.abs().amax(dim=1)


def display_maps(model: nn.Module, x: torch.Tensor, method: str, classes: torch.Tensor | None = None,
                 *, ig_steps: int = 50) -> torch.Tensor:
    """(N, H, W) in [0,1] at the image's size: |attribution| for gradient-type methods -- for colour
    images the largest |attribution| over the three channels at each pixel (Simonyan et al. 2014's
    saliency map; one picture per image whatever the channel count) -- the positive part for class
    maps (upsampled bilinearly), each map divided by its own maximum."""
    if classes is None:
        with torch.no_grad():
            classes = model(x).argmax(1)
    if method == "integrated_gradients":
        raw = METHODS[method](model, x, classes, steps=ig_steps)
    else:
        raw = METHODS[method](model, x, classes)
    raw = raw.detach()
    if raw.dim() == 3:                      # (N, h, w) class maps
        maps = F.interpolate(raw.clamp_min(0)[:, None], size=x.shape[-2:], mode="bilinear",
                             align_corners=False)[:, 0]
    else:                                   # (N, C, H, W) input attributions
        maps = channel_max_abs(raw)
    peak = maps.flatten(1).amax(1).clamp_min(1e-12)
    return maps / peak.view(-1, 1, 1)


def export_stimulus_saliency(folder: Path, stimuli: list, models: dict[str, nn.Module], methods: list[str],
                             *, ig_steps: int = 50, batch_size: int = 64) -> dict[str, dict[str, Any]]:
    """For every stimulus, the saliency of the model it was made against, for the class that model
    predicts on it, as `saliency/<method>/<stimulus id>.png`. Returns {stimulus id: manifest entry}."""
    entries: dict[str, dict[str, Any]] = {s.id: {} for s in stimuli}
    by_defense: dict[str, list] = {}
    for s in stimuli:
        by_defense.setdefault(s.defense, []).append(s)
    for defense, mine in by_defense.items():
        model = models[defense]
        for method in methods:
            if not applies(method, model):
                continue
            (folder / "saliency" / method).mkdir(parents=True, exist_ok=True)
            for i in range(0, len(mine), batch_size):
                chunk = mine[i:i + batch_size]
                x = torch.stack([s.image for s in chunk])
                with torch.no_grad():
                    classes = model(x).argmax(1)
                maps = display_maps(model, x, method, classes, ig_steps=ig_steps)
                for s, m, c in zip(chunk, maps, classes.tolist(), strict=True):
                    rel = f"saliency/{method}/{s.id}.png"
                    write_png(folder / rel, m.cpu().numpy())
                    entries[s.id][method] = {"image": rel, "sha256": sha256_file(folder / rel), "class": c}
    return entries
