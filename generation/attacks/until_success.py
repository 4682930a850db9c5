""""Until success": grow an attack's budget until the model predicts the target.

Runs the attack at each budget in increasing order on the images that have not yet succeeded,
keeping for each image the result at the smallest budget that worked.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .base import AttackResult, finish


def until_success(attack: Callable[..., AttackResult], model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor, *, target: torch.Tensor | None = None, budgets: list[float],
                  budget_param: str = "epsilon", **params) -> AttackResult:
    images = x.detach().clone()
    budget = torch.full((x.shape[0],), float("nan"), dtype=torch.float64, device=x.device)
    todo = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for b in budgets:
        idx = todo.nonzero().flatten()
        if idx.numel() == 0:
            break
        res = attack(model, x[idx], y[idx], target=None if target is None else target[idx],
                     **{**params, budget_param: b})
        # Keep the last attempt for images that never succeed, so they are reported as failed
        # (with the perturbation actually tried), never silently returned as the clean image.
        images[idx] = res.images
        won = idx[res.success]
        budget[won] = b
        todo[won] = False
    result = finish(model, x, images, y, target)
    result.budget = budget
    return result
