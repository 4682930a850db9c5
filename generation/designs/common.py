"""Pieces every design shares: batched quantized attack calls, stimulus records, the manifest record."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advlegit.contracts.stimulus_set import ESTIMANDS

from ..config import StimuliConfig
from ..stimuli import Source, Stimulus, run_quantized, stimulus_norms


def attack_batched(attack, model: nn.Module, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor,
                   params: dict[str, Any], budget_param: str, budget: torch.Tensor | float | None,
                   batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(8-bit images, success) of one attack over all pairs; `budget` a float or one value per pair."""
    images, success = [], []
    for i in range(0, len(x), batch_size):
        b = budget[i:i + batch_size] if torch.is_tensor(budget) else budget
        res = run_quantized(attack, model, x[i:i + batch_size], y[i:i + batch_size], t[i:i + batch_size],
                            params, budget_param, b)
        images.append(res.images)
        success.append(res.success)
    return torch.cat(images), torch.cat(success)


def records(pairs: list[tuple[Source, int]], defense: str, images: torch.Tensor, success: torch.Tensor,
            budgets: list[float | None], params: list[dict[str, Any]], design: str,
            tag: str = "") -> list[Stimulus]:
    norms = stimulus_norms(torch.stack([s.image for s, _ in pairs]), images)
    return [Stimulus(src, tgt, defense, images[j], bool(success[j]), budgets[j], norms[j], params[j],
                     design=design, tag=tag)
            for j, (src, tgt) in enumerate(pairs)]


def design_record(cfg: StimuliConfig, **settings: Any) -> dict[str, Any]:
    """The manifest's top-level `stimulus_design`: the design, its estimand in words, its settings."""
    return {"design": cfg.design, "estimand": ESTIMANDS[cfg.design], "attack": cfg.attack,
            "attack_params": dict(cfg.attack_params), "controls": list(cfg.controls), **settings}
