"""PGD adversarial training (Madry et al. 2018): minimize CE at the L-inf PGD point.

epsilon ramps linearly from 0 over the first `ramp_fraction` of training, which keeps short
CPU runs from collapsing to a constant prediction early on.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.pgd import pgd_linf
from .base import Defense, TrainContext, linear_ramp


class PGDAdversarial(Defense):
    name = "pgd_adv"

    @dataclass
    class Params:
        epsilon: float = 0.3  # L-inf budget (Madry et al. MNIST: 0.3)
        steps: int = 40  # PGD steps per training batch (paper: 40)
        step_size: float = 0.01  # per PGD step (paper: 0.01)
        ramp_fraction: float = 0.0  # epsilon rises linearly from 0 over this fraction of training

    def prepare(self, ctx: TrainContext) -> None:
        self.total_steps = ctx.total_steps

    def epsilon_at(self, step: int) -> float:
        return self.params.epsilon * linear_ramp(step, getattr(self, "total_steps", 0), self.params.ramp_fraction)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        was_training = model.training
        model.eval()  # attack the deterministic network, as evaluation will
        x_adv = pgd_linf(model, x, y, epsilon=self.epsilon_at(step), step_size=self.params.step_size,
                         steps=self.params.steps, random_start=True, seed=step).images
        model.train(was_training)
        return F.cross_entropy(model(x_adv), y)
