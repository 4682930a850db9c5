"""Stimulus designs (docs/generation.md) and the estimand each identifies, in plain words.

The design comes from the export's companion `.study.json` (`stimulus_design`, `estimand`) or the
export's `stimulus_design` column; old exports have neither, and the report says so.
"""
from __future__ import annotations

import pandas as pd

DESIGNS = ("fixed_budget", "matched_norm", "minimal", "ross")

ESTIMANDS = {
    "fixed_budget": (
        "every defense was attacked with the same attack, budget ε, steps and step size, and failed attacks "
        "were kept (flagged). The comparison estimates how often people name the target class for an image "
        "attacked at that ε against each defense, P(target named | defense, ε), without selecting images on "
        "the model's decision. The perturbations' sizes can still differ between defenses at equal ε, so the "
        "primary test adjusts for the L2 norm of the perturbation."),
    "matched_norm": (
        "within each (source digit, target class) group every defense's image has the same perturbation size. "
        "The comparison estimates the effect of the defense on how often people name the target class at equal "
        "perturbation size: differences are due to the perturbation's direction, not its size. The norm is "
        "fixed by design, so the primary test does not adjust for it."),
    "minimal": (
        "each defense's image uses the smallest budget that fools that model. Perturbation size therefore "
        "moves with the defense: the comparison estimates the combined effect of the defense and of the "
        "larger perturbation it needs (confounded with perturbation size; for replication only). The primary "
        "test adjusts for the L2 norm, but that budget was chosen by the model's own decision boundary, so "
        "even the adjusted contrast is not a clean defense effect."),
    "ross": (
        "Ross & Doshi-Velez's protocol (iterated targeted FGSM, 10 steps of 0.1, no ε-ball), for direct "
        "replication. Perturbation size differs between defenses, so the comparison is confounded with it; "
        "the primary test adjusts for the L2 norm."),
}
UNKNOWN = ("the export does not say how the perturbation sizes were chosen (no `stimulus_design` in its "
           "companion file or columns; an export from before stimulus designs were recorded). If each model's "
           "own minimal budget was used, the defense comparison is confounded with perturbation size; the "
           "primary test adjusts for the L2 norm where the export records it.")


def detect(df: pd.DataFrame, stated: str = "") -> tuple[str, str]:
    """(design, where it came from). Unknown designs give ("", "...")."""
    if stated:
        return stated, "the study's companion file"
    if "stimulus_design" in df:
        vals = sorted({str(v) for v in df["stimulus_design"].dropna().unique() if str(v) not in ("", "nan")})
        if len(vals) == 1:
            return vals[0], "the export's stimulus_design column"
        if len(vals) > 1:
            return "+".join(vals), "the export's stimulus_design column (several designs mixed)"
    return "", "not recorded"


def estimand_text(design: str, stated: str = "") -> str:
    if stated:
        return stated
    if design in ESTIMANDS:
        return ESTIMANDS[design]
    if design:
        return (f"the stimulus design {design!r} is not one this analysis knows; its estimand is not stated. "
                + UNKNOWN.split(". ", 1)[1])
    return UNKNOWN


def norm_fixed(design: str) -> bool:
    """Whether the design fixes the perturbation norm across defenses (no norm covariate needed)."""
    return design == "matched_norm"


def stimulus_kind(d: pd.DataFrame) -> pd.Series:
    """adversarial | control_flip | control_noise per row ("adversarial" when the column is absent)."""
    if "stimulus_kind" not in d:
        return pd.Series("adversarial", index=d.index)
    k = d["stimulus_kind"].fillna("").astype(str).str.strip()
    return k.mask(k.isin(["", "nan", "None"]), "adversarial")


def adversarial_only(d: pd.DataFrame) -> pd.DataFrame:
    return d[stimulus_kind(d) == "adversarial"]


def simulated_mask(df: pd.DataFrame) -> pd.Series:
    if "simulated" not in df:
        return pd.Series(False, index=df.index)
    s = df["simulated"]
    if str(s.dtype) in ("bool", "boolean"):
        return s.fillna(False).astype(bool)
    return s.astype(str).str.strip().str.lower().isin(["true", "1", "yes", "t"])
