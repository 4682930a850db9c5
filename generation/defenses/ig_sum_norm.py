"""IG-SUM-NORM (Chen et al., NeurIPS 2019):

    L = max_{x' in B_inf(x, eps)} [ CE(x') + beta * ||IG(x -> x')||_1 ],

IG of the per-example cross-entropy along x -> x' (right Riemann sum). The inner max is PGD with a
random start on the same objective with a cheap `inner_ig_steps`; the outer loss is evaluated at
that x' with `ig_steps` points and create_graph=True. beta = 0 is exactly Madry et al.'s PGD
adversarial training (`pgd_adv` with the same epsilon, steps and step_size): same random start,
steps and projection, hence the same x' and the same loss.
Their code sums over the batch; we average (same objective up to a constant factor).

Paper (MNIST): beta = 0.1, eps = 0.3, PGD 40 x 0.01, m = 50 (inner 10), batch 50, 100k steps,
no eps ramp -- the defaults (cost: see ig_norm; examples/mnist-interpretability.toml reduces them).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attribution_terms import ig_l1
from .ig_norm import IGInnerMaxDefense, IGInnerMaxParams


@dataclass
class IGSumNormParams(IGInnerMaxParams):
    beta: float = 0.1  # weight of ||IG(x -> x')||_1 beside CE(x'); 0 = PGD adversarial training (paper: 0.1)

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"ig_sum_norm: beta must be >= 0, got {self.beta}")
        self.check("ig_sum_norm")


class IGSumNorm(IGInnerMaxDefense):
    name = "ig_sum_norm"
    Params = IGSumNormParams

    def objective(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                  ig_steps: int) -> torch.Tensor:
        """Per-example CE(x') + beta ||IG(x -> x')||_1."""
        ce = F.cross_entropy(model(x_adv), y, reduction="none")
        if self.params.beta == 0:
            return ce
        return ce + self.params.beta * ig_l1(model, x, x_adv, y, ig_steps)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.inner_max(model, x, lambda z: self.objective(model, x, z, y, self.params.inner_ig_steps).sum(),
                              step)

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.objective(model, x.detach(), x_adv, y, self.params.ig_steps).mean()
