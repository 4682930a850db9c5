"""minimal: each model's own smallest successful budget, found by bisection to `resolution`.
Confounded with perturbation size by construction (robust models need larger perturbations)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..attacks import bisection_rounds, get_attack, minimal_budget
from ..config import StimuliConfig
from ..stimuli import Source, Stimulus, base_params, pair_tensors, resolved_step, run_quantized, stimulus_params
from .common import design_record, records


def minimal_budgets(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
                    batch_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """{defense: (images, success, budget)} with budget nan where max_budget failed."""
    attack, params = get_attack(cfg.attack), base_params(cfg)
    x, y, t = pair_tensors(pairs)
    n_batches = (len(pairs) + batch_size - 1) // batch_size
    total = len(defended) * n_batches * (bisection_rounds(cfg.max_budget, cfg.resolution) + 1)
    out = {}
    with tqdm(total=total, desc="bisect minimal budget", leave=False, dynamic_ncols=True) as bar:
        for name, model in defended.items():
            parts = []
            for i in range(0, len(pairs), batch_size):
                xb, yb, tb = x[i:i + batch_size], y[i:i + batch_size], t[i:i + batch_size]

                def run(idx, budget, xb=xb, yb=yb, tb=tb, model=model):
                    return run_quantized(attack, model, xb[idx], yb[idx], tb[idx], params, cfg.budget_param, budget)

                parts.append(minimal_budget(run, len(xb), max_budget=cfg.max_budget, resolution=cfg.resolution,
                                            device=x.device, progress=bar.update))
            out[name] = tuple(torch.cat(p) for p in zip(*parts, strict=True))
    return out


def minimal(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
            *, batch_size: int = 128) -> tuple[list[Stimulus], dict[str, Any]]:
    params = base_params(cfg)
    out: list[Stimulus] = []
    for name, (images, success, budget) in minimal_budgets(pairs, defended, cfg, batch_size).items():
        # the epsilon each image was made with: its minimal budget, or max_budget for a failure
        used = [cfg.max_budget if b != b else float(b) for b in budget.tolist()]
        sps = [stimulus_params(cfg, params, e, resolved_step(params, e)) for e in used]
        out += records(pairs, name, images, success, used, sps, cfg.design)
    return out, design_record(cfg, max_budget=cfg.max_budget, resolution=cfg.resolution,
                              budget_param=cfg.budget_param,
                              failures="kept, flagged success = false, made at max_budget")
