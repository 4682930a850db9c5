"""IG-NORM (Chen, Wu, Rastogi, Liang, Jha, "Robust Attribution Regularization", NeurIPS 2019):

    L = CE(x) + lambda * max_{x' in B_inf(x, eps)} ||IG(x -> x')||_1,

IG of the per-example cross-entropy along the straight path x -> x' (right Riemann sum,
a_k = k/m). The inner max is PGD with a random start on ||IG||_1 with a cheap `inner_ig_steps`
(their "approx_factor" 5: 10 of the 50 points); the outer term uses `ig_steps` points with
create_graph=True so it trains the weights. Their code sums CE and ||IG||_1 over the batch; we
average both, the same objective up to a constant factor.

Paper (MNIST): lambda = 1, eps = 0.3, PGD 40 x 0.01 with a random start, m = 50 (inner 10),
batch 50, 100k steps, no eps ramp -- the defaults. One IG point with create_graph costs about as
much as 1.2 plain training steps, so a step costs ~1.2 (ig_steps + steps * inner_ig_steps) + 1
plain steps: ~500x at the paper's values, a GPU job. examples/mnist-interpretability.toml runs a
reduced inner maximization on CPU and says so. Measured cost per step: see BENCHMARKS.md (bench_saliency).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attribution_terms import ig_l1
from .base import Defense, TrainContext, linear_ramp
from .inner_max import InnerMaximizer, check_fraction, check_pgd


@dataclass
class IGInnerMaxParams:
    """What IG-NORM and IG-SUM-NORM share: the inner PGD and the Riemann points of IG."""

    epsilon: float = 0.3  # L-inf radius of the inner maximization (paper MNIST: 0.3)
    steps: int = 40             # inner PGD steps (paper: 40)
    step_size: float = 0.01     # per inner step (paper: 0.01)
    ig_steps: int = 50          # Riemann points of the trained IG term (paper: m = 50)
    inner_ig_steps: int = 10    # points inside the inner maximization (paper: 10, approx_factor 5)
    ramp_fraction: float = 0.0  # eps rises from 0 over this fraction of training (paper: 0, no ramp)

    def check(self, name: str) -> None:
        check_pgd(name, self.epsilon, self.steps, self.step_size)
        if self.ig_steps < 1 or self.inner_ig_steps < 1:
            raise ValueError(f"{name}: ig_steps and inner_ig_steps (Riemann points) must be >= 1, "
                             f"got {self.ig_steps} and {self.inner_ig_steps}")
        check_fraction(name, "ramp_fraction", self.ramp_fraction)


@dataclass
class IGNormParams(IGInnerMaxParams):
    lambda_: float = 1.0  # weight of max ||IG(x -> x')||_1 (paper: 1)

    def __post_init__(self) -> None:
        if self.lambda_ < 0:
            raise ValueError(f"ig_norm: lambda_ must be >= 0, got {self.lambda_}")
        self.check("ig_norm")


class IGInnerMaxDefense(InnerMaximizer, Defense):
    """A defense whose loss is taken at an inner-maximization point x' with a ramped epsilon."""

    def prepare(self, ctx: TrainContext) -> None:
        self.total_steps = ctx.total_steps

    def epsilon_at(self, step: int) -> float:
        return self.params.epsilon * linear_ramp(step, getattr(self, "total_steps", 0), self.params.ramp_fraction)

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.loss_at(model, x, self.attack(model, x, y, step), y)


class IGNorm(IGInnerMaxDefense):
    name = "ig_norm"
    Params = IGNormParams

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """The inner max: x' that maximizes ||IG(x -> x')||_1 (cheap m)."""
        return self.inner_max(model, x, lambda z: ig_l1(model, x, z, y, self.params.inner_ig_steps).sum(), step)

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(model(x), y)
        if self.params.lambda_ == 0:
            return ce
        return ce + self.params.lambda_ * ig_l1(model, x.detach(), x_adv, y, self.params.ig_steps).mean()
