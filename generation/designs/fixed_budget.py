"""fixed_budget: every defense attacked with the same attack, epsilon, steps and step size.
Failed attacks are kept (success = false): selecting on success would select on the model."""
from __future__ import annotations

from typing import Any

from torch import nn
from tqdm.auto import tqdm

from ..attacks import get_attack
from ..config import StimuliConfig
from ..stimuli import Source, Stimulus, base_params, pair_tensors, resolved_step, stimulus_params
from .common import attack_batched, design_record, records


def fixed_budget(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
                 *, batch_size: int = 128) -> tuple[list[Stimulus], dict[str, Any]]:
    attack, params = get_attack(cfg.attack), base_params(cfg)
    x, y, t = pair_tensors(pairs)
    out: list[Stimulus] = []
    with tqdm(total=len(cfg.epsilons) * len(defended), desc="attack (fixed budget)", leave=False,
              dynamic_ncols=True) as bar:
        for eps in cfg.epsilons:
            # several epsilons: each (source, target, epsilon) is its own matched group
            tag = f"-e{eps:g}" if len(cfg.epsilons) > 1 else ""
            sp = stimulus_params(cfg, params, eps, resolved_step(params, eps))
            for name, model in defended.items():
                images, success = attack_batched(attack, model, x, y, t, params, cfg.budget_param, eps, batch_size)
                out += records(pairs, name, images, success, [eps] * len(pairs), [dict(sp)] * len(pairs),
                               cfg.design, tag)
                bar.update()
    return out, design_record(cfg, epsilons=list(cfg.epsilons), budget_param=cfg.budget_param,
                              failures="kept, flagged success = false")
