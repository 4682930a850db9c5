"""What every defense is: a training objective on one batch, plus optional preparation."""
from __future__ import annotations

import dataclasses
import keyword
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn


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


def build_params(cls: type[Defense], raw: dict[str, Any]) -> Any:
    """Defense parameters from a config table; unknown or mistyped keys raise with the key's name."""
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    # TOML may say `lambda`; Python needs `lambda_` (a keyword).
    raw = {(k + "_" if keyword.iskeyword(k) else k): v for k, v in raw.items()}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r} for defense {cls.name!r} "
                         f"(known: {', '.join(sorted(fields)) or 'none'})")
    kwargs = {}
    for key, value in raw.items():
        default = fields[key].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = type(default)(value) if ok and isinstance(default, float) else value
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"parameter {key!r} of defense {cls.name!r} must be "
                             f"{type(default).__name__}, got {value!r}")
        kwargs[key] = value
    return cls.Params(**kwargs)


def linear_ramp(step: int, total_steps: int, fraction: float) -> float:
    """1.0 after the first `fraction` of training, rising linearly from ~0 before it.

    Short CPU runs collapse to a constant prediction when a strong regularizer or a large
    adversarial budget is applied from step 0; ramping it in avoids that.
    """
    ramp = fraction * total_steps
    return min(1.0, (step + 1) / ramp) if ramp > 0 else 1.0
