"""What a manifest says about its stimuli, for manifest format 1 and 2 alike (docs/stimulus-set.md).

Format 2 adds per stimulus `kind`, `twin`, `design`, and a top-level `stimulus_design`; format 1 has
none of them: every stimulus is adversarial, has no twin, and the set's design is `minimal` (the
until-success search that format 1 generation ran).
"""
from __future__ import annotations

from typing import Any

from advlegit.contracts.export import STIMULUS_DESIGNS, STIMULUS_KINDS
from advlegit.contracts.stimulus_set import ESTIMANDS

DEFAULT_KIND = "adversarial"
DEFAULT_DESIGN = "minimal"


def stimulus_kind(entry: dict[str, Any]) -> str:
    """adversarial | control_flip | control_noise for a stimulus entry; "clean" for a source entry."""
    if "defense" not in entry:
        return "clean"
    kind = entry.get("kind") or DEFAULT_KIND
    if kind not in STIMULUS_KINDS:
        raise ValueError(f"stimulus {entry.get('id')}: unknown kind {kind!r} (expected one of {STIMULUS_KINDS})")
    return kind


def twin_of(entry: dict[str, Any]) -> str | None:
    """The adversarial twin's stimulus id of a control; None for adversarial and clean images."""
    return entry.get("twin") or None


def set_design(manifest: dict[str, Any]) -> str:
    """The stimulus set's design: fixed_budget | matched_norm | minimal | ross."""
    design = (manifest.get("stimulus_design") or {}).get("design") or DEFAULT_DESIGN
    if design not in STIMULUS_DESIGNS:
        raise ValueError(f"manifest.json: unknown stimulus_design.design {design!r} "
                         f"(expected one of {STIMULUS_DESIGNS})")
    return design


def set_estimand(manifest: dict[str, Any]) -> str:
    """The estimand the set's design identifies, as the manifest states it (format 1: the standard
    sentence for `minimal`, which says it is confounded with perturbation size)."""
    return (manifest.get("stimulus_design") or {}).get("estimand") or ESTIMANDS[set_design(manifest)]
