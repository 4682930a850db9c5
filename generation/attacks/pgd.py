"""Projected gradient descent in L-inf and L2 (Madry et al.), and iterated TGSM (no random start)."""
from __future__ import annotations

import torch
from torch import nn

from .base import AttackResult, ascent_direction, default_target, finish, generator


def _l2_normalize(v: torch.Tensor) -> torch.Tensor:
    norm = v.flatten(1).norm(dim=1).clamp_min(1e-12)
    return v / norm.view(-1, *([1] * (v.dim() - 1)))


def _project_l2(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    factor = (epsilon / norm).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.dim() - 1)))


def pgd_linf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
             epsilon: float = 0.3, step_size: float | None = None, steps: int = 40,
             random_start: bool = True, seed: int = 0) -> AttackResult:
    """L-inf PGD; step_size defaults to 2.5*epsilon/steps (Madry et al.'s rule of thumb)."""
    alpha = 2.5 * epsilon / steps if step_size is None else step_size
    x = x.detach()
    x_adv = x.clone()
    if random_start:
        noise = torch.rand(x.shape, generator=generator(seed, x.device), device=x.device, dtype=x.dtype)
        x_adv = (x + (2 * noise - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv + alpha * ascent_direction(model, x_adv, y, target).sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return finish(model, x, x_adv, y, target)


def pgd_l2(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
           epsilon: float = 2.0, step_size: float | None = None, steps: int = 40,
           random_start: bool = True, seed: int = 0) -> AttackResult:
    """L2 PGD: normalized gradient steps, projection onto the L2 ball and [0,1]."""
    alpha = 2.5 * epsilon / steps if step_size is None else step_size
    x = x.detach()
    delta = torch.zeros_like(x)
    if random_start:
        g = generator(seed, x.device)
        direction = _l2_normalize(torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype))
        radius = torch.rand(x.shape[0], generator=g, device=x.device, dtype=x.dtype) * epsilon
        delta = ((x + direction * radius.view(-1, *([1] * (x.dim() - 1)))).clamp(0, 1) - x)
    for _ in range(steps):
        grad = ascent_direction(model, x + delta, y, target)
        delta = _project_l2(delta + alpha * _l2_normalize(grad), epsilon)
        delta = (x + delta).clamp(0, 1) - x
    return finish(model, x, x + delta, y, target)


def tgsm_iterative(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                   target: torch.Tensor | None = None, epsilon: float = 0.3,
                   step_size: float | None = None, steps: int = 10) -> AttackResult:
    """Iterated targeted FGSM (Ross & Doshi-Velez's TGSM figures): sign steps toward the target,
    kept inside the eps-ball, no random start. Target defaults to (y + 1) mod K."""
    target = default_target(y) if target is None else target
    return pgd_linf(model, x, y, target=target, epsilon=epsilon, step_size=step_size, steps=steps,
                    random_start=False)
