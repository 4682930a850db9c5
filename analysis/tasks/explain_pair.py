"""explain_pair: two models' saliency maps of one source digit side by side; which shows the digit
better? `defense`/`defense_b` are the models whose maps were shown left/right, `chosen_defense` the one
picked. Whose maps do people prefer?

Section: the primary test (per pre-registered pair, logit P(a's map chosen) with a centred left-side
term, cluster-robust: compare's estimator); the binomial mixed model per pair with crossed random
intercepts for participant and group (analysis.mixed.fit_mixed, family "binomial"); P(choose A) per pair
and Bradley-Terry strengths per model (compare's), and the side bias."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from advlegit.analysis import compare as choice_stats
from advlegit.analysis import designs, figures, models, pipeline
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.results import Section, Table

from .base import AnalysisTask


def frame(df: pd.DataFrame) -> pd.DataFrame:
    """The explain_pair rows with a choice; chose_left as 0/1 (what compare's statistics read)."""
    d = df[(df["task_type"] == "explain_pair") & df["chosen_side"].isin(["left", "right"])].copy()
    d["chose_left"] = (d["chosen_side"] == "left").astype(float)
    return d


def mixed_pairs(d: pd.DataFrame, pairs: list[tuple[str, str]], alpha: float) -> pd.DataFrame:
    """Per pair (a, b): chose a's map ~ 1 + a_shown_left + (1|participant) + (1|group), binomial; the
    intercept is the log-odds of choosing a's map over b's with the side averaged out."""
    from advlegit.analysis.mixed import fit_mixed

    rows = []
    for a, b in pairs:
        sub = d[((d["defense"] == a) & (d["defense_b"] == b)) | ((d["defense"] == b) & (d["defense_b"] == a))]
        row = {"contrast": f"{a} vs {b}", "n_trials": len(sub)}
        if sub["participant_id"].nunique() < 2:
            rows.append(row | {"log_odds": np.nan, "note": "fewer than two participants saw this pair"})
            continue
        left = (sub["defense"] == a).astype(float)
        fit_on = pd.DataFrame({"chose_a": (sub["chosen_defense"] == a).astype(float),
                               "a_shown_left": left - left.mean(), "participant_id": sub["participant_id"],
                               "group": sub["group"].fillna(sub["stimulus_id"])})
        res = fit_mixed(fit_on, "chose_a", family="binomial", fixed="a_shown_left",
                        random=["participant_id", "group"], alpha=alpha)
        t = res.table.set_index("term").loc["Intercept"]
        rows.append(row | {"log_odds": t["estimate"], "se": t["se"], "odds_ratio": t["odds_ratio"],
                           "or_ci_low": t["or_ci_low"], "or_ci_high": t["or_ci_high"], "p": t["p"],
                           "engine": res.engine, "note": "; ".join(map(str, res.notes))})
    return pd.DataFrame(rows)


def analyse(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool, design: str = "") -> tuple[Section, dict]:
    d = frame(d)
    d = d[designs.stimulus_kind(d) == "adversarial"]
    defenses = sorted(set(d["defense"]) | set(d["defense_b"]))
    ref, _ = pipeline.resolve_defenses(cfg, defenses, "explain_pair")
    rng = np.random.default_rng(cfg.seed)
    lv = cfg.level
    sec = Section("explain_pair: whose saliency map shows the digit better?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} choices between two models' maps of one "
                  f"source digit (participants were not told the models). Reference: **{ref}**.")
    primary = models.primary_model("explain_pair", d, cfg, ref, design)
    prim, notes = primary.detail, primary.notes
    sec.tables.append(Table("explain_pair_primary", "Primary test (pre-registered)", prim, pipeline._primary_note(
        cfg, "Chosen map: for each contrast 'a vs b', the trials that showed a's map beside b's; logit P(a's map "
        "chosen) with a centred left-side term; odds_ratio = odds of choosing a's map over b's; cluster-robust by "
        "participant and group.", notes, prim)))
    summary = {"primary": {"explain_pair": prim.to_dict("records")}, "reference": {"explain_pair": ref},
               "models": [primary]}
    if cfg.mixed_model:
        mixed = models.mixed_model("explain_pair", d, cfg, ref)
        summary["models"].append(mixed)
        mm = mixed.detail
        sec.tables.append(Table("explain_pair_mixed_model", "Binomial mixed model per pair", mm,
                                "chose a's map ~ 1 + a_shown_left + (1|participant) + (1|group); the intercept's "
                                f"odds ratio with {lv} Wald intervals (analysis.mixed.fit_mixed, binomial)."))
    sec.tables.append(Table("explain_pair_pairs", "P(choose A's map) per pair of models",
                            choice_stats.pair_table(d, cfg.n_boot, cfg.alpha, rng),
                            f"{lv} CI from a participant-cluster bootstrap; exact binomial test against 0.5; "
                            "Holm across pairs; effect size Cohen's h."))
    bt, side = choice_stats.bradley_terry(d, ref, min(cfg.n_boot, 500), cfg.alpha, rng)
    summary["rates"] = {"explain_pair": bt.to_dict("records")}
    sec.tables.append(Table("explain_pair_bradley_terry", "Bradley-Terry strengths per model", bt,
                            f"Log-odds of a model's map being chosen relative to the reference (0); {lv} CIs from "
                            "resampling participants."))
    sb = choice_stats.side_bias(d, cfg.n_boot, cfg.alpha, rng)
    sb = pd.concat([sb, side.rename(columns={"estimate": "bt_side_log_odds"})], axis=1)
    sec.tables.append(Table("explain_pair_side_bias", "Side (left/right) bias", sb,
                            "Share of trials where the left map was chosen; 0.5 = no bias."))
    figures.strengths(bt, figdir / "explain_pair_strengths.png", level=lv)
    sec.figures.append(("explain_pair_strengths.png", f"Bradley-Terry strengths of the models' maps, {lv} CIs"))
    return sec, summary


TASK = AnalysisTask("explain_pair", "chosen_defense", analyse, simulated=True)
