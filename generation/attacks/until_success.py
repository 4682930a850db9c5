""""Until success" by bisection: the smallest budget (to a resolution) at which an attack fools the model.

Replaces the coarse budget ladder: the ladder overshot robust models' minima by up to a rung, and
the step size (2.5 eps / steps) grew with the rung. Every image's bracket [lo, hi] halves each round;
hi is always a budget that worked, so the returned image is a verified success at `budget`.
Attack success need not be monotone in the budget: the result is *a* boundary budget within
`resolution`, which for iterated sign attacks is in practice the smallest.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .base import AttackResult

# run(indices, budgets) -> the attack's result on those images at those per-image budgets
Runner = Callable[[torch.Tensor, torch.Tensor], AttackResult]


def bisection_rounds(max_budget: float, resolution: float) -> int:
    return max(0, math.ceil(math.log2(max_budget / resolution)))


def minimal_budget(run: Runner, n: int, *, max_budget: float, resolution: float, device: torch.device,
                   progress: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns (images, success, budget) for n images: budget = the smallest successful budget found
    (nan where even max_budget failed; those images are the attempt at max_budget, kept to be
    reported as failed, never silently replaced by the clean image)."""
    everyone = torch.arange(n, device=device)
    hi = torch.full((n,), float(max_budget), dtype=torch.float64, device=device)
    lo = torch.zeros(n, dtype=torch.float64, device=device)
    first = run(everyone, hi)
    images, ok = first.images.clone(), first.success.clone()
    if progress:
        progress()
    for _ in range(bisection_rounds(max_budget, resolution)):
        idx = ok.nonzero().flatten()
        if idx.numel() == 0:
            break
        mid = (lo[idx] + hi[idx]) / 2
        res = run(idx, mid)
        won = res.success
        hi[idx[won]] = mid[won]
        images[idx[won]] = res.images[won]
        lo[idx[~won]] = mid[~won]
        if progress:
            progress()
    budget = torch.where(ok, hi, torch.full_like(hi, float("nan")))
    return images, ok, budget
