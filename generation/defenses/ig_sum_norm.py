"""IG-SUM-NORM (Chen et al., NeurIPS 2019):

    L = max_{x' in B_inf(x, eps)} [ CE(x') + beta * ||IG(x -> x')||_1 ],

IG of the per-example cross-entropy along x -> x' (right Riemann sum). The inner max is PGD with a
random start on the same objective with a cheap `inner_ig_steps`; the outer loss is evaluated at
that x' with `ig_steps` points and create_graph=True. beta = 0 is exactly Madry et al.'s PGD
adversarial training (`pgd_adv` with the same epsilon, steps and step_size): same random start,
steps and projection, hence the same x' and the same loss.
Their code sums over the batch; we average (same objective up to a constant factor).

Paper (MNIST): beta = 0.1, eps = 0.3, PGD 40 x 0.01, m = 50 (inner 10), batch 50, 100k steps.
CPU-scaled defaults: PGD 3 x 0.25 (2.5 eps / steps), m = 8 outer / 2 inner, eps ramped in over
the first 30% of training. A step costs ~1.2 (ig_steps + steps * inner_ig_steps) + 1 plain steps:
~12-15x measured, ~250x at the paper's values. Measured cost per step: see BENCHMARKS.md (bench_saliency).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attribution_terms import ig_l1
from .base import Defense, TrainContext, linear_ramp
from .inner_max import check_fraction, check_pgd, eval_mode, linf_pgd_maximize


@dataclass
class IGSumNormParams:
    beta: float = 0.1  # weight of ||IG(x -> x')||_1 beside CE(x'); 0 = PGD adversarial training (paper: 0.1)
    epsilon: float = 0.3  # L-inf radius of the inner maximization (paper MNIST: 0.3)
    steps: int = 3              # paper 40
    step_size: float = 0.25     # paper 0.01 (here 2.5 eps / steps)
    ig_steps: int = 8           # paper 50
    inner_ig_steps: int = 2     # paper 10
    ramp_fraction: float = 0.3  # paper 0 (no ramp)

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"ig_sum_norm: beta must be >= 0, got {self.beta}")
        check_pgd("ig_sum_norm", self.epsilon, self.steps, self.step_size)
        if self.ig_steps < 1 or self.inner_ig_steps < 1:
            raise ValueError(f"ig_sum_norm: ig_steps and inner_ig_steps (Riemann points) must be >= 1, "
                             f"got {self.ig_steps} and {self.inner_ig_steps}")
        check_fraction("ig_sum_norm", "ramp_fraction", self.ramp_fraction)


class IGSumNorm(Defense):
    name = "ig_sum_norm"
    Params = IGSumNormParams

    def prepare(self, ctx: TrainContext) -> None:
        self.total_steps = ctx.total_steps

    def epsilon_at(self, step: int) -> float:
        return self.params.epsilon * linear_ramp(step, getattr(self, "total_steps", 0), self.params.ramp_fraction)

    def objective(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                  ig_steps: int) -> torch.Tensor:
        """Per-example CE(x') + beta ||IG(x -> x')||_1."""
        ce = F.cross_entropy(model(x_adv), y, reduction="none")
        if self.params.beta == 0:
            return ce
        return ce + self.params.beta * ig_l1(model, x, x_adv, y, ig_steps)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        p = self.params
        with eval_mode(model):
            return linf_pgd_maximize(lambda z: self.objective(model, x, z, y, p.inner_ig_steps).sum(), x,
                                     epsilon=self.epsilon_at(step), step_size=p.step_size, steps=p.steps,
                                     seed=step)

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(model, x.detach(), x_adv, y, self.params.ig_steps).mean()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.loss_at(model, x, self.attack(model, x, y, step), y)
