"""matched_norm: within each (source, target) group every defense's image has the same perturbation
norm (l2 or linf, measured on the 8-bit image), equal within `tolerance` (relative).

1. each defense's minimal budget by bisection (as design "minimal");
2. every defense attacked at the group's largest minimal budget (max_budget where one never succeeded);
3. each perturbation scaled up (never down: scaling down could undo an attack) until its 8-bit norm
   reaches the group's largest; the scale is found by bisection on the quantized image, because
   [0,1] clipping and 8-bit rounding make the norm a step function of the scale.
Groups that still differ by more than `tolerance` (a perturbation saturated by clipping) are dropped,
listed in the manifest and logged. Images that do not fool their model are kept, flagged
success = false: dropping them would select on the model's decision.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import get_attack
from ..attacks.base import finish
from ..config import StimuliConfig
from ..stimuli import Source, Stimulus, base_params, pair_tensors, quantize, resolved_step, stimulus_params
from .common import attack_batched, design_record, records
from .minimal import minimal_budgets

log = logging.getLogger(__name__)


def norm_of(delta: torch.Tensor, norm: str) -> torch.Tensor:
    d = delta.flatten(1).double()
    return d.norm(dim=1) if norm == "l2" else d.abs().amax(dim=1)


def rescale_to(x: torch.Tensor, delta: torch.Tensor, target: torch.Tensor, norm: str,
               rounds: int = 40, max_scale: float = 64.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the scale s >= 1 whose 8-bit image quantize(clip(x + s*delta)) has its norm closest
    to `target`. Returns (images, scales)."""
    shape = (-1, *([1] * (x.dim() - 1)))

    def image(s: torch.Tensor) -> torch.Tensor:
        return quantize((x + s.view(shape).to(x.dtype) * delta).clamp(0, 1), reference=x)

    def measure(s: torch.Tensor) -> torch.Tensor:
        return norm_of(image(s) - x, norm)

    lo = torch.ones(len(x), dtype=torch.float64, device=x.device)
    hi = lo.clone()
    while True:  # grow hi until it reaches the target (or saturates)
        short = (measure(hi) < target) & (hi < max_scale)
        if not short.any():
            break
        hi = torch.where(short, hi * 2, hi)
    for _ in range(rounds):  # the norm is non-decreasing in s: bisect
        mid = (lo + hi) / 2
        reached = measure(mid) >= target
        hi, lo = torch.where(reached, mid, hi), torch.where(reached, lo, mid)
    best = torch.where((measure(lo) - target).abs() <= (measure(hi) - target).abs(), lo, hi)
    return image(best), best


def matched_norm(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
                 *, batch_size: int = 128) -> tuple[list[Stimulus], dict[str, Any]]:
    attack, params = get_attack(cfg.attack), base_params(cfg)
    x, y, t = pair_tensors(pairs)
    names = list(defended)
    minimal = minimal_budgets(pairs, defended, cfg, batch_size)
    minima = torch.stack([minimal[n][2] for n in names])                # (D, P), nan = never succeeded
    group_eps = torch.nan_to_num(minima, nan=cfg.max_budget).amax(0)    # (P,)

    deltas = {}
    for name in tqdm(names, desc="attack at the group budget", leave=False, dynamic_ncols=True):
        images, _ = attack_batched(attack, defended[name], x, y, t, params, cfg.budget_param, group_eps, batch_size)
        deltas[name] = images - x
    target = torch.stack([norm_of(d, cfg.norm) for d in deltas.values()]).amax(0)  # (P,)

    out: list[Stimulus] = []
    achieved = []
    for k, name in enumerate(names):
        images, scales = rescale_to(x, deltas[name], target, cfg.norm)
        res = finish(defended[name], x, images, y, t)
        achieved.append(norm_of(images - x, cfg.norm))
        sps = [stimulus_params(cfg, params, float(e), resolved_step(params, float(e)),
                               minimal_budget=None if m != m else round(m, 8), rescale=round(float(s), 6),
                               matched_norm=cfg.norm, matched_value=round(float(v), 6))
               for e, m, s, v in zip(group_eps.tolist(), minima[k].tolist(), scales, target, strict=True)]
        out += records(pairs, name, res.images, res.success, [float(e) for e in group_eps], sps, cfg.design)

    rel = (torch.stack(achieved) / target.clamp_min(1e-12) - 1).abs().amax(0)   # worst defense per group
    keep = rel <= cfg.tolerance
    dropped = [f"{s.id}-t{tg}" for (s, tg), ok in zip(pairs, keep.tolist(), strict=True) if not ok]
    if dropped:
        log.warning("matched_norm: %d of %d groups could not be matched within %.1f%% (%s) and are dropped: %s",
                    len(dropped), len(pairs), 100 * cfg.tolerance, cfg.norm, ", ".join(dropped))
    dropped_set = set(dropped)
    out = [s for s in out if s.group not in dropped_set]
    return out, design_record(cfg, norm=cfg.norm, tolerance=cfg.tolerance, max_budget=cfg.max_budget,
                              resolution=cfg.resolution, budget_param=cfg.budget_param,
                              groups_total=len(pairs), groups_matched=len(pairs) - len(dropped),
                              groups_dropped=dropped,
                              max_relative_difference=round(float(rel[keep].max()) if keep.any() else 0.0, 6),
                              failures="kept, flagged success = false")
