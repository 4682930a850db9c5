"""Both defenses together: input-gradient regularization plus FGSM adversarial training, as
Ross & Doshi-Velez's code trains it (`train_models.py`):

    L = 1/2 [ CE(x) + lambda * mean_i ||d/dx_i CE_i||^2 + CE(x_adv) ],

the penalty halved with the two cross-entropies. `lambda_` therefore means what it means for
`gradreg` (the paper's lambda_R / 2B, 110 for MNIST) and the penalty's effective weight is half of
it (~55 per example at the default), the paper's. x_adv is FGSM from the predicted labels.
"""
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
        return 0.5 * (F.cross_entropy(logits, y) + self.lambda_at(step) * penalty
                      + F.cross_entropy(model(x_adv), y))
