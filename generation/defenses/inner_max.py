"""Shared pieces of the adversarially trained regularizers: the inner L-inf maximization, the
attack-time eval mode and the epsilon schedules."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..attacks.base import generator


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Attack the deterministic network (dropout off), as evaluation will; restore the mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def linf_pgd_maximize(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *,
                      epsilon: float, step_size: float, steps: int, seed: int) -> torch.Tensor:
    """x' in B_inf(x, epsilon) and [0,1] by sign-gradient ascent on objective(x') (one scalar for the
    batch, e.g. a sum of per-example terms), from a uniform random start.

    The noise, steps and projections are those of `attacks.pgd.pgd_linf`, so with the summed
    cross-entropy as objective this returns pgd_linf's point. Returns a detached tensor; x itself
    when epsilon is 0 (the attack could not move).
    """
    x = x.detach()
    if epsilon <= 0:
        return x
    noise = torch.rand(x.shape, generator=generator(seed, x.device), device=x.device, dtype=x.dtype)
    x_adv = (x + (2 * noise - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(x_adv), x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return x_adv.detach()


def delayed_ramp(step: int, total_steps: int, start: float, end: float) -> float:
    """0 until `start` of training, then linear to 1 at `end` (fractions of total_steps); Boopathy
    et al.'s epsilon schedule. 1.0 when total_steps is unknown (0)."""
    if total_steps <= 0:
        return 1.0
    progress = (step + 1) / total_steps
    if progress <= start:
        return 0.0
    if end <= start or progress >= end:
        return 1.0
    return (progress - start) / (end - start)


def check_pgd(name: str, epsilon: float, steps: int, step_size: float) -> None:
    """Shared validation of a defense's inner PGD parameters (messages name the defense)."""
    if not 0 <= epsilon <= 1:
        raise ValueError(f"{name}: epsilon must be in [0, 1] (images are in [0,1]), got {epsilon}")
    if steps < 1:
        raise ValueError(f"{name}: steps (inner PGD iterations) must be >= 1, got {steps}")
    if step_size <= 0:
        raise ValueError(f"{name}: step_size must be > 0, got {step_size}")


def check_fraction(name: str, key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{name}: {key} is a fraction of training steps and must be in [0, 1], got {value}")


class InnerMaximizer:
    """For defenses taking their loss at an inner-maximization point: Params with `step_size` and
    `steps`, and an `epsilon_at(step)` schedule. The PGD runs on the network in eval mode."""

    def inner_max(self, model: nn.Module, x: torch.Tensor, objective: Callable[[torch.Tensor], torch.Tensor],
                  step: int) -> torch.Tensor:
        with eval_mode(model):
            return linf_pgd_maximize(objective, x, epsilon=self.epsilon_at(step), step_size=self.params.step_size,
                                     steps=self.params.steps, seed=step)
