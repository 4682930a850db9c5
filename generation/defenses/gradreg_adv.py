"""Both defenses together: input-gradient regularization plus FGSM adversarial training."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .fgsm_adv import fgsm_from_predictions
from .gradreg import GradReg, GradRegParams, input_gradient_penalty


@dataclass
class GradRegAdvParams(GradRegParams):
    epsilon: float = 0.3  # L-inf budget of the FGSM half of the loss (paper: 0.3)


class GradRegAdversarial(GradReg):
    name = "gradreg_adv"
    Params = GradRegAdvParams

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        x_adv = fgsm_from_predictions(model, x, self.params.epsilon)
        x = x.detach().requires_grad_(True)
        logits = model(x)
        penalty = input_gradient_penalty(logits, x, y, self.params.variant)
        adv = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(model(x_adv), y))
        return adv + self.lambda_at(step) * penalty
