"""Model-level measurements: accuracy, predictions, input-gradient norms, transfer accuracy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import exact_fp32


@exact_fp32
@torch.no_grad()
def probabilities(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    return torch.cat([F.softmax(model(x[i:i + batch_size]), dim=1) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512) -> float:
    return (probabilities(model, x, batch_size).argmax(1) == y).float().mean().item()


@exact_fp32
def input_gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Per-example ||d CE(y, f(x)) / dx||_2: what gradient regularization is meant to shrink."""
    norms = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].detach().requires_grad_(True)
        loss = F.cross_entropy(model(xb), y[i:i + batch_size], reduction="sum")
        (g,) = torch.autograd.grad(loss, xb)
        norms.append(g.flatten(1).norm(dim=1))
    return torch.cat(norms)
