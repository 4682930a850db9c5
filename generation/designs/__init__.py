"""Stimulus designs: how the perturbation size of each (source, target, defense) is chosen.

One module per design, one registry line. Every design has the same signature:
design(pairs, defended, cfg, *, batch_size) -> (stimuli, stimulus_design record for the manifest).
The estimand each identifies is stated in contracts.stimulus_set.ESTIMANDS and docs/generation.md.
"""
from __future__ import annotations

from .fixed_budget import fixed_budget
from .matched_norm import matched_norm
from .minimal import minimal
from .ross import ross

DESIGNS = {
    "fixed_budget": fixed_budget,
    "matched_norm": matched_norm,
    "minimal": minimal,
    "ross": ross,
}

__all__ = ["DESIGNS"]
