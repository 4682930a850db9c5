"""FGSM adversarial training (Goodfellow et al.) as in Ross & Doshi-Velez: the perturbation is made
from the model's *predicted* labels (no label leaking) and the loss is 1/2 [CE(x) + CE(x_adv)]."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import loss_gradient
from .base import Defense


def fgsm_from_predictions(model: nn.Module, x: torch.Tensor, epsilon: float) -> torch.Tensor:
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    return (x + epsilon * loss_gradient(model, x, pred).sign()).clamp(0, 1).detach()


def half_clean_half_adversarial(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                                epsilon: float) -> torch.Tensor:
    x_adv = fgsm_from_predictions(model, x, epsilon)
    return 0.5 * (F.cross_entropy(model(x), y) + F.cross_entropy(model(x_adv), y))


class FGSMAdversarial(Defense):
    name = "fgsm_adv"

    @dataclass
    class Params:
        epsilon: float = 0.3  # L-inf budget of the FGSM examples trained on (paper: 0.3)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return half_clean_half_adversarial(model, x, y, self.params.epsilon)
