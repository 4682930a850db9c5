"""What every defense is: a training objective on one batch, plus optional preparation."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from advlegit.contracts.validation import build


@dataclass
class TrainContext:
    """What a defense may need beyond the batch: how to train a helper model (distillation's teacher)."""

    train_model: Callable[[Callable[..., torch.Tensor], str], nn.Module]
    total_steps: int


class Defense:
    """A training objective. Subclasses set `Params` (a dataclass) and implement `loss`."""

    name: ClassVar[str]
    Params: ClassVar[type] = dataclass(type("Params", (), {}))

    def __init__(self, params: Any) -> None:
        self.params = params

    def prepare(self, ctx: TrainContext) -> None:
        """Called once before training the defended model."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        raise NotImplementedError


def build_params(cls: type[Defense], raw: dict[str, Any], where: str = "") -> Any:
    """Defense parameters from a config table (contracts/validation.py: types from the Params annotations,
    `lambda` for `lambda_`); an unknown or mistyped key raises a ValueError naming it under `where`."""
    return build(cls.Params, raw, where)


def linear_ramp(step: int, total_steps: int, fraction: float) -> float:
    """1.0 after the first `fraction` of training, rising linearly from ~0 before it.

    Short CPU runs collapse to a constant prediction when a strong regularizer or a large
    adversarial budget is applied from step 0; ramping it in avoids that.
    """
    ramp = fraction * total_steps
    return min(1.0, (step + 1) / ramp) if ramp > 0 else 1.0
