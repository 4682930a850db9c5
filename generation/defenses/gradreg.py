"""Input-gradient regularization by double backpropagation (Drucker & LeCun; Ross & Doshi-Velez 2018).

L = CE(y, f(x)) + lambda * mean_i ||d/dx_i CE(label_i, f(x_i))||^2, with the label either the true y
("y") or the uniform distribution 1/K ("certainty-insensitive"). lambda is *per example*: the
paper's 56234 on the squared gradient of a batch-mean loss at batch 256 is 56234/512 ~ 110 here.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Defense, TrainContext, linear_ramp


def input_gradient_penalty(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                           variant: str) -> torch.Tensor:
    """Mean over the batch of ||grad_x loss_i||^2, differentiable (create_graph) for the weights."""
    log_p = F.log_softmax(logits, dim=1)
    if variant == "y":
        per_example = -log_p.gather(1, y[:, None]).squeeze(1)
    else:  # certainty-insensitive: cross-entropy against the uniform label
        per_example = -log_p.mean(dim=1)
    (grad,) = torch.autograd.grad(per_example.sum(), x, create_graph=True)
    return grad.pow(2).flatten(1).sum(dim=1).mean()


@dataclass
class GradRegParams:
    lambda_: float = 110.0  # per-example weight of ||grad_x CE||^2 (paper: 56234 on a batch mean at B=256 = 110)
    variant: str = "y"        # "y" or "uniform" (certainty-insensitive)
    ramp_fraction: float = 0.0  # lambda rises linearly from 0 over this fraction of training

    def __post_init__(self) -> None:
        if self.variant not in ("y", "uniform"):
            raise ValueError(f"variant must be 'y' or 'uniform', got {self.variant!r}")
        if self.lambda_ < 0:
            raise ValueError("lambda_ must be >= 0")


class GradReg(Defense):
    name = "gradreg"
    Params = GradRegParams

    def prepare(self, ctx: TrainContext) -> None:
        self.total_steps = ctx.total_steps

    def lambda_at(self, step: int) -> float:
        return self.params.lambda_ * linear_ramp(step, getattr(self, "total_steps", 0), self.params.ramp_fraction)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        logits = model(x)
        penalty = input_gradient_penalty(logits, x, y, self.params.variant)
        return F.cross_entropy(logits, y) + self.lambda_at(step) * penalty
