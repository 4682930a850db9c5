"""Runs every analysis that the data support, in order, and returns report sections."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import agreement, compare, figures, identify, rate, rcheck
from analysis.config import DEFAULT_PRIMARY, DEFAULT_REFERENCE, AnalysisConfig
from analysis.errors import AnalysisError
from analysis.exclusions import apply_exclusions
from analysis.results import Section, Table
from analysis.stats import holm

log = logging.getLogger(__name__)
MIN_PARTICIPANTS = 2
LABELS = {"target_hit": "target-class rate", "original_hit": "original-class rate"}


@dataclass
class Analysis:
    sections: list[Section] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def resolve_defenses(cfg: AnalysisConfig, defenses: list[str], task: str) -> tuple[str, tuple[str, str]]:
    """Reference defense and primary contrast; defaults fall back to the data, user choices do not."""
    if len(defenses) < 2:
        raise AnalysisError(
            f"only one defense ({defenses[0]!r}) in the {task} responses after exclusions: "
            "comparisons need at least two")
    ref = cfg.reference_defense
    if ref is None:
        ref = DEFAULT_REFERENCE if DEFAULT_REFERENCE in defenses else defenses[0]
    elif ref not in defenses:
        raise AnalysisError(f"reference_defense {ref!r} is not among the defenses: {', '.join(defenses)}")
    pc = cfg.primary_contrast
    if pc is None:
        pc = DEFAULT_PRIMARY if set(DEFAULT_PRIMARY) <= set(defenses) else (
            next(d for d in defenses if d != ref), ref)
    else:
        missing = [x for x in pc if x not in defenses]
        if missing:
            raise AnalysisError(f"primary_contrast names defenses not in the data: {', '.join(missing)} "
                                f"(defenses: {', '.join(defenses)})")
    # record what was assumed so the options table shows the values actually used
    if cfg.reference_defense is None:
        cfg.reference_defense = ref
    if cfg.primary_contrast is None:
        cfg.primary_contrast = tuple(pc)
    return ref, tuple(pc)


def _subsample(d: pd.DataFrame, cap: int, seed: int) -> tuple[pd.DataFrame, str]:
    pids = d["participant_id"].unique()
    if cap <= 0 or len(pids) <= cap:
        return d, f"all {len(pids)} participants"
    keep = np.random.default_rng(seed).choice(pids, cap, replace=False)
    return d[d["participant_id"].isin(keep)], f"a random subsample of {cap} of {len(pids)} participants"


def primary_table(d: pd.DataFrame, cfg: AnalysisConfig, ref: str, treat: str, ctrl: str,
                  outcome: str) -> pd.DataFrame:
    """One row per pre-registered contrast: the single primary contrast, or a Holm family."""
    if cfg.primary_family is None:
        contrasts = [(treat, ctrl)]
    else:
        names = sorted(d["defense"].unique())
        contrasts = [(a, ref) for a in names if a != ref]
        if cfg.primary_family == "all_pairs":
            contrasts += [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if ref not in (a, b)]
    rows = []
    for a, b in contrasts:
        r = identify.primary_test(d, a, b, outcome)
        rows.append({"contrast": f"{a} vs {b}", "outcome": outcome, "odds_ratio": np.exp(r["log_or"]),
                     "or_ci_low": np.exp(r["ci_low"]), "or_ci_high": np.exp(r["ci_high"]),
                     "log_or": r["log_or"], "se": r["se"], "t": r["t"], "df": r["df"], "p": r["p"],
                     "converged": r["converged"]})
    out = pd.DataFrame(rows)
    if cfg.primary_family:
        out["p_holm"] = holm(out["p"])
    out["significant"] = out["p_holm" if cfg.primary_family else "p"] < cfg.alpha
    return out


def analyse_identify(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool) -> tuple[Section, dict]:
    d = identify.identify_frame(d)
    defenses = sorted(d["defense"].unique())
    ref, (treat, ctrl) = resolve_defenses(cfg, defenses, "identify")
    sec = Section("identify: which class do people see?",
                  f"{d['participant_id'].nunique()} participants, {d['stimulus_id'].nunique()} images, "
                  f"{len(d)} responses, defenses: {', '.join(defenses)}. Reference defense: **{ref}**.")
    r_job, r_err = None, None
    if cfg.mixed_model:
        sub, who = _subsample(d, cfg.mixed_model_max_participants, cfg.seed)
        if r_ok:  # start R now so it runs on the other core while Python works
            try:
                r_job = rcheck.start_glmer(sub, "target_hit", ref)
            except Exception as exc:  # R is optional: report, never fail the analysis
                r_err = exc
    outcome0 = cfg.primary_outcome if cfg.primary_outcome in identify.OUTCOMES else "target_hit"
    prim_df = primary_table(d, cfg, ref, treat, ctrl, outcome0)
    family = cfg.primary_family
    sec.tables.append(Table("identify_primary", "Primary test (pre-registered)", prim_df,
                            f"Logit {outcome0} ~ defense; two-way cluster-robust (participant, image) "
                            "covariance (CRV1); t reference with min(#participants, #images) - 1 df; "
                            f"α = {cfg.alpha:g}. " + (
                                f"Family '{family}': Holm-adjusted within it (p_holm decides)." if family
                                else "A single pre-registered contrast: no correction.")
                            + ("" if prim_df["converged"].all() else
                               " WARNING: the logit did not converge (a defense with no or only target hits: "
                               "separation); its estimates and p-values are not usable.")))
    summary = {"primary": prim_df.to_dict("records"), "reference": ref}
    for outcome in identify.OUTCOMES:
        label = LABELS[outcome]
        rt = identify.rates_table(d, outcome, cfg.alpha)
        sec.tables.append(Table(f"identify_rates_{outcome}", f"{outcome}: rates per defense × attack", rt,
                                "rate = mean over participants of each participant's rate; 95% Wilson "
                                "interval with n = participants (conservative under clustering)."))
        fit, X = identify.defense_model(d, outcome, ref)
        sec.tables.append(Table(f"identify_omnibus_{outcome}", f"{outcome}: omnibus tests across defenses",
                                identify.omnibus(d, outcome, ref, fit, X),
                                "The cluster-robust Wald test is the primary omnibus; the by-participant "
                                "and by-item tests check that the result holds for both random factors."))
        sec.tables.append(Table(f"identify_pairwise_{outcome}", f"{outcome}: pairwise contrasts",
                                identify.pairwise(d, outcome, ref, fit, X, cfg.alpha),
                                "Holm correction (method='holm', stated, not the library default) within "
                                "each family (vs reference; other pairs) and each method. Effect sizes: odds "
                                "ratio (model), mean difference and d_z (paired t on participant means), "
                                "d_z on matched-set means (paired t, by-item)."))
        figures.rates_by_defense(rt, label, figdir / f"rates_{outcome}.png", ref)
        sec.figures.append((f"rates_{outcome}.png", f"{label} per defense with 95% Wilson intervals"))
    fitc, _ = identify.defense_model(d, "target_hit", ref, covariates=True)
    sec.tables.append(Table("identify_logit_target_hit", "Logistic regression target_hit ~ defense + attack "
                            "+ budget + norm_l2 (two-way cluster-robust)",
                            identify.odds_ratio_table(fitc, cfg.alpha),
                            "Covariates with a single value in the data are left out. Odds ratios with "
                            "95% CIs; clustered by participant and by image."))
    figures.participant_lines(d, "target_hit", LABELS["target_hit"], figdir / "participant_lines.png")
    sec.figures.append(("participant_lines.png", "Each participant's target-class rate across defenses"))
    if "norm_l2" in d and d["norm_l2"].notna().any():
        figures.rate_vs_perturbation(d[d["norm_l2"].notna()], "target_hit", LABELS["target_hit"],
                                     figdir / "rate_vs_perturbation.png", cfg.alpha)
        sec.figures.append(("rate_vs_perturbation.png", "target-class rate against L2 perturbation size"))
    if "budget" in d and d["budget"].notna().any():
        bt = identify.rates(d[d["budget"].notna()], "target_hit", cfg.alpha, ["defense", "budget"])
        sec.tables.append(Table("identify_rates_by_budget", "target_hit by ε (budget) and defense", bt,
                                "Participant means per cell; Wilson intervals with n = participants."))
        figures.budget_breakdown(bt, LABELS["target_hit"], figdir / "budget_breakdown.png")
        sec.figures.append(("budget_breakdown.png", "ε-wise breakdown of the target-class rate"))
    if cfg.mixed_model:
        fe, vc = identify.bayes_glmm(sub, "target_hit", ref)
        note = ("APPROXIMATE BAYESIAN FIT (statsmodels BinomialBayesMixedGLM, variational Bayes): crossed "
                "random intercepts for participant and image. No p-values; the posterior SDs are known to "
                "understate uncertainty, so the intervals are not confidence intervals. "
                f"Fitted on {who}.")
        if r_ok:
            try:
                if r_err is not None:
                    raise r_err
                rt_ = r_job.result()
                fe = fe.merge(rt_.rename(columns={"estimate": "lme4_glmer_estimate", "se": "lme4_glmer_se"}),
                              on="term", how="left")
                fe["difference_logit"] = fe["post_mean_log_odds"] - fe["lme4_glmer_estimate"]
                note += " lme4::glmer (Laplace ML) on the same rows is shown beside it."
            except Exception as exc:  # R is optional: report, never fail the analysis
                note += f" R cross-check failed: {exc}"
        else:
            note += " R cross-check (lme4) skipped: R not available."
        sec.tables.append(Table("identify_mixed_model", "Mixed model target_hit ~ defense + (1|participant) "
                                "+ (1|image)", fe, note))
        sec.tables.append(Table("identify_mixed_model_variance", "Mixed model: random-effect SDs", vc,
                                "Posterior mean of the SD (exp of posterior mean log-SD)."))
    rng = np.random.default_rng(cfg.seed)
    sec.tables.append(Table("identify_agreement", "Agreement between people (same image)",
                            agreement.rater_agreement(d, "identify", cfg.n_boot, cfg.alpha, rng),
                            "Responses ('0'..'9', 'none') as nominal categories; images seen by ≥ 2 "
                            "people; 95% percentile CIs from resampling images."))
    hm = agreement.human_model_agreement(d, cfg.alpha)
    if len(hm):
        sec.tables.append(Table("identify_human_model", "Agreement between people and models", hm,
                                "Share of answered responses naming the digit the model predicts for the "
                                "same image; Wilson intervals on responses (ignore clustering)."))
    return sec, summary


def analyse_rate(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool) -> Section:
    d = rate.rate_frame(d)
    defenses = sorted(d["defense"].unique())
    ref, _ = resolve_defenses(cfg, defenses, "rate")
    sec = Section("rate: how much does the image look like the target (1-7)?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} ratings. Reference: **{ref}**.")
    desc = rate.descriptives(d, cfg.alpha)
    sec.tables.append(Table("rate_descriptives", "Ratings per defense", desc,
                            "mean of participant means with a t-interval over participants."))
    fr = rate.friedman(d)
    if len(fr):
        sec.tables.append(Table("rate_friedman", "Friedman test on participant means", fr,
                                "Participants who rated every defense; Kendall's W = χ²/(n(k-1))."))
    sec.tables.append(Table("rate_wilcoxon", "Pairwise Wilcoxon signed-rank on participant means",
                            rate.wilcoxon_pairs(d, ref),
                            "Effect size: matched-pairs rank-biserial r. Holm within each family."))
    ordm = rate.ordinal_model(d, ref, cfg.alpha)
    note = ("Proportional-odds logit (statsmodels OrderedModel, thresholds instead of a constant), "
            "SEs clustered by participant. Odds ratio > 1: higher ratings.")
    if r_ok and cfg.mixed_model:
        try:
            sub, who = _subsample(d, cfg.mixed_model_max_participants, cfg.seed)
            rr = rcheck.clmm(sub, ref)
            ordm = ordm.merge(rr.rename(columns={"estimate": "clmm_estimate", "se": "clmm_se"}),
                              on="term", how="left")
            note += (f" ordinal::clmm (crossed random intercepts, on {who}) beside it: its conditional "
                     "log-odds are larger in size than the marginal ones by design.")
        except Exception as exc:
            note += f" R cross-check failed: {exc}"
    else:
        note += " R cross-check (ordinal::clmm) skipped" + (": R not available." if not r_ok else ".")
    sec.tables.append(Table("rate_ordinal", "Ordinal (proportional-odds) model", ordm, note))
    if cfg.mixed_model:
        sec.tables.append(Table("rate_lmm", "Linear mixed model (sensitivity check)",
                                rate.linear_mixed(d, ref, cfg.alpha),
                                "rating ~ defense + (1|participant), REML; treats ratings as interval."))
    rng = np.random.default_rng(cfg.seed)
    sec.tables.append(Table("rate_agreement", "Agreement between people (same image)",
                            agreement.rater_agreement(d, "rate", cfg.n_boot, cfg.alpha, rng),
                            "Krippendorff's alpha, ordinal metric; percentile CI from resampling images."))
    figures.mean_ratings(desc, figdir / "ratings.png")
    sec.figures.append(("ratings.png", "Mean rating per defense"))
    return sec


def analyse_compare(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path) -> Section:
    d = compare.compare_frame(d)
    defenses = sorted(set(d["defense"]) | set(d["defense_b"]))
    ref, _ = resolve_defenses(cfg, defenses, "compare")
    rng = np.random.default_rng(cfg.seed)
    sec = Section("compare: which of two images looks more like the target?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} choices. Reference: **{ref}**.")
    sec.tables.append(Table("compare_pairs", "P(choose A) per pair of defenses",
                            compare.pair_table(d, cfg.n_boot, cfg.alpha, rng),
                            "95% CI from a participant-cluster bootstrap; exact binomial test against 0.5 "
                            "(treats choices as independent); Holm across pairs; effect size Cohen's h."))
    bt, side = compare.bradley_terry(d, ref, min(cfg.n_boot, 500), cfg.alpha, rng)
    sec.tables.append(Table("compare_bradley_terry", "Bradley-Terry strengths", bt,
                            "Log-odds of being chosen relative to the reference (0), from a logit with a "
                            "left-side term; 95% CIs from resampling participants."))
    sb = compare.side_bias(d, cfg.n_boot, cfg.alpha, rng)
    sb = pd.concat([sb, side.rename(columns={"estimate": "bt_side_log_odds"})], axis=1)
    sec.tables.append(Table("compare_side_bias", "Side (left/right) bias", sb,
                            "Share of trials where the left image was chosen; 0.5 = no bias."))
    figures.strengths(bt, figdir / "bradley_terry.png")
    sec.figures.append(("bradley_terry.png", "Bradley-Terry strengths with bootstrap CIs"))
    return sec


def _defenses(d: pd.DataFrame) -> list[str]:
    cols = [c for c in ("defense", "defense_b") if c in d]
    return sorted({str(x) for c in cols for x in d[c].dropna().unique() if str(x)})


def run_analysis(df: pd.DataFrame, cfg: AnalysisConfig, figdir: Path) -> Analysis:
    ex = apply_exclusions(df, cfg)
    out = Analysis()
    head = Section("Exclusions", "Rules applied in this order, before any statistic. Practice and "
                   "attention-check trials are never analysed.")
    head.tables.append(Table("exclusions", "Exclusions", ex.table,
                             "Each row counts what that rule removed from what the earlier rules left."))
    out.sections.append(head)
    out.summary["exclusions"] = ex.table
    if cfg.r_crosscheck == "off":
        r_ok, why = False, "r_crosscheck = off"
    else:
        r_ok, why = rcheck.r_available()
        if cfg.r_crosscheck == "on" and not r_ok:
            raise AnalysisError(f"r_crosscheck = on but R is not usable: {why}")
    out.summary["r"] = "used" if r_ok else f"skipped ({why})"
    data = ex.data
    for task in ("identify", "rate", "compare"):
        part = data[data["task_type"] == task]
        if len(part) == 0:
            continue
        log.info("analysing %s (%d responses)", task, len(part))
        n_people = part["participant_id"].nunique()
        if n_people < MIN_PARTICIPANTS:
            out.sections.append(Section(f"{task}: not analysed", (
                f"Only {n_people} participant(s) left after exclusions (defenses: {', '.join(_defenses(part))}); "
                f"the {task} analysis needs at "
                f"least {MIN_PARTICIPANTS} (its standard errors are clustered by participant). See the "
                "exclusions table above.")))
            continue
        try:
            if task == "identify":
                sec, summ = analyse_identify(part, cfg, figdir, r_ok)
                out.summary.update(summ)
            elif task == "rate":
                sec = analyse_rate(part, cfg, figdir, r_ok)
            else:
                sec = analyse_compare(part, cfg, figdir)
        except AnalysisError:
            raise
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            # Small or degenerate data (a pilot, a handful of bots) can make a model inestimable: say so
            # in the report instead of losing the other tasks' results.
            log.exception("%s analysis failed", task)
            sec = Section(f"{task}: could not be estimated", (
                f"The {task} models could not be fitted to these {len(part)} responses from {n_people} "
                f"participants ({type(exc).__name__}: {exc}); defenses in these data: "
                f"{', '.join(_defenses(part))}. Collect more data, or check the exclusions."))
        out.sections.append(sec)
    return out
