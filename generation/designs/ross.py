"""ross: Ross & Doshi-Velez's iterated TGSM for direct replication: `steps` sign steps of `step_size`
toward the target (their generate_tgsm_grids.py: 10 x 0.1), clipped to [0,1], no epsilon-ball."""
from __future__ import annotations

from typing import Any

from torch import nn
from tqdm.auto import tqdm

from ..attacks import get_attack
from ..config import StimuliConfig
from ..stimuli import Source, Stimulus, pair_tensors
from .common import attack_batched, design_record, records


def ross(pairs: list[tuple[Source, int]], defended: dict[str, nn.Module], cfg: StimuliConfig,
         *, batch_size: int = 128) -> tuple[list[Stimulus], dict[str, Any]]:
    steps = int(cfg.attack_params.get("steps", 10))
    step = float(cfg.attack_params.get("step_size", 0.1))
    # epsilon = 1 makes the projection a no-op on [0,1] images: exactly "no epsilon-ball"
    params = {"epsilon": 1.0, "step_size": step, "steps": steps}
    sp = {"epsilon": None, "step_size": step, "steps": steps, "norm": "linf", "projection": "none",
          "seed": cfg.seed}
    x, y, t = pair_tensors(pairs)
    out: list[Stimulus] = []
    for name, model in tqdm(defended.items(), desc="attack (ross)", leave=False, dynamic_ncols=True):
        images, success = attack_batched(get_attack("tgsm_iterative"), model, x, y, t, params, "epsilon", None,
                                         batch_size)
        out += records(pairs, name, images, success, [None] * len(pairs), [dict(sp)] * len(pairs), cfg.design)
    return out, design_record(cfg, steps=steps, step_size=step, projection="none",
                              failures="kept, flagged success = false")
