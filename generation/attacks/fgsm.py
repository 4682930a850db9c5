"""Fast gradient sign method (Goodfellow et al.) and its targeted form TGSM."""
from __future__ import annotations

import torch
from torch import nn

from .base import AttackResult, ascent_direction, default_target, finish


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
         epsilon: float = 0.3) -> AttackResult:
    """x' = clip(x + eps*sign(grad CE(y)))  or, targeted,  clip(x - eps*sign(grad CE(target)))."""
    x_adv = (x + epsilon * ascent_direction(model, x, y, target).sign()).clamp(0, 1)
    return finish(model, x, x_adv, y, target)


def tgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
         epsilon: float = 0.3) -> AttackResult:
    """Targeted FGSM, one step; without a target, aims at (y + 1) mod K as the paper's figures do."""
    return fgsm(model, x, y, target=default_target(y) if target is None else target, epsilon=epsilon)
