"""No defense: cross-entropy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import Defense


class Normal(Defense):
    name = "normal"

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return F.cross_entropy(model(x), y)
