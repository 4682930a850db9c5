"""explain: whose saliency maps do people judge more interpretable? Each row is one 1-7 rating of how
well a model's map explains the digit beside it; `defense` is the model whose map was shown.

Section: per-model mean rating with t-intervals over participants; the primary test (rating ~ model by
least squares, cluster-robust by participant and group, the same estimator as rate's); and the
proportional-odds mixed model with crossed random intercepts for participant and image
(analysis.mixed.fit_mixed, family "ordinal"), the model that respects the scale's being ordinal."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from advlegit.analysis import agreement, designs, figures, models, pipeline
from advlegit.analysis import rate as rating_stats
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.results import Section, Table

from .base import AnalysisTask


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """The explain rows with a rating, the rating as a number."""
    d = df[(df["task_type"] == "explain") & df["rating"].notna()].copy()
    d["rating"] = d["rating"].astype(float)
    return d


def analyse(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool, design: str = "") -> tuple[Section, dict]:
    d = frame(d)
    kinds = designs.stimulus_kind(d)
    n_controls = int((kinds != "adversarial").sum())
    d = d[kinds == "adversarial"]  # maps of control images answer another question (see docs/analysis.md)
    defenses = sorted(d["defense"].unique())
    ref, _ = pipeline.resolve_defenses(cfg, defenses, "explain")
    lv = cfg.level
    sec = Section("explain: whose saliency maps explain the digit better (1-7)?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} ratings of saliency maps, each the map of "
                  f"the model named in `defense` (participants were not told which). Reference: **{ref}**."
                  + (f" {n_controls} ratings of maps of control stimuli are left out." if n_controls else ""))
    primary = models.primary_model("explain", d, cfg, ref, design)
    prim, notes = primary.detail, primary.notes
    sec.tables.append(Table("explain_primary", "Primary test (pre-registered)", prim, pipeline._primary_note(
        cfg, "Rating of the map (1-7) ~ model by least squares; mean_diff is the difference in rating points; "
        "cluster-robust covariance by participant and (source, target) group (or image).", notes, prim)))
    desc = rating_stats.descriptives(d, cfg.alpha)
    summary = {"primary": {"explain": prim.to_dict("records")}, "reference": {"explain": ref},
               "rates": {"explain": desc.to_dict("records")}, "models": [primary]}
    sec.tables.append(Table("explain_descriptives", "Map ratings per model", desc,
                            f"Mean of participant means with a {lv} t-interval over participants."))
    if cfg.mixed_model:
        mixed = models.mixed_model("explain", d, cfg, ref)
        summary["models"].append(mixed)
        ordm = mixed.detail
        note = (f"Proportional-odds (cumulative) logit with crossed random intercepts for participant and image; "
                f"{lv} Wald intervals. Odds ratio > 1: that model's maps are rated higher than the reference's.")
        if ordm.attrs.get("engine"):
            note += f" Engine: {ordm.attrs['engine']}."
        if ordm.attrs.get("notes"):
            note += " " + " ".join(str(n).rstrip(".") + "." for n in ordm.attrs["notes"])
        sec.tables.append(Table("explain_ordinal", "Ordinal (proportional-odds) mixed model", ordm, note))
    rng = np.random.default_rng(cfg.seed)
    sec.tables.append(Table("explain_agreement", "Agreement between people (same map)",
                            agreement.rater_agreement(d, "explain", cfg.n_boot, cfg.alpha, rng),
                            f"Krippendorff's alpha, ordinal metric; {lv} percentile CI from resampling maps."))
    figures.mean_ratings(desc, figdir / "explain_ratings.png", level=lv)
    sec.figures.append(("explain_ratings.png", f"Mean map rating per model, {lv} t-intervals"))
    return sec, summary


TASK = AnalysisTask("explain", "rating", analyse, simulated=True)
