"""Runs every analysis that the data support, in order, and returns report sections."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import expit

from advlegit.analysis import agreement, compare, designs, figures, identify, models, rate, rcheck
from advlegit.analysis.config import AnalysisConfig, StudyInfo
from advlegit.analysis.errors import AnalysisError
from advlegit.analysis.exclusions import apply_exclusions
from advlegit.analysis.results import Section, Table
from advlegit.analysis.stats import cluster_logit, cluster_ols, holm, treatment_design
from advlegit.contracts import analysis_options

log = logging.getLogger(__name__)
MIN_PARTICIPANTS = 2
LABELS = {"target_hit": "target-class rate", "original_hit": "original-class rate"}


@dataclass
class Analysis:
    sections: list[Section] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # task -> [models.ModelResult]: the objects the API returns


def reference_for(cfg: AnalysisConfig, defenses: list[str]) -> str:
    ref = cfg.reference_defense
    if not ref:  # the one rule, shared with the study app
        return analysis_options.reference_for(defenses)
    if ref not in defenses:
        raise AnalysisError(f"reference_defense {ref!r} is not among the defenses: {', '.join(defenses)}")
    return ref


def contrasts_for(cfg: AnalysisConfig, defenses: list[str], ref: str) -> list[tuple[str, str]]:
    """The pre-registered family: one contrast, each defense vs the reference, or all pairs."""
    pc = cfg.primary_contrast
    if isinstance(pc, tuple):
        missing = [x for x in pc if x not in defenses]
        if missing:
            raise AnalysisError(f"primary_contrast names defenses not in the data: {', '.join(missing)} "
                                f"(defenses: {', '.join(defenses)})")
        return [pc]
    names = sorted(defenses)
    out = [(a, ref) for a in names if a != ref]
    if pc == "all_pairs":
        out += [(a, b) for i, a in enumerate(names) for b in names[i + 1:] if ref not in (a, b)]
    return out


def resolve_defenses(cfg: AnalysisConfig, defenses: list[str], task: str) -> tuple[str, tuple[str, str]]:
    """Reference defense and the first primary contrast (power analyses simulate that one)."""
    if len(defenses) < 2:
        raise AnalysisError(
            f"only one defense ({defenses[0]!r}) in the {task} responses after exclusions: "
            "comparisons need at least two")
    ref = reference_for(cfg, defenses)
    return ref, contrasts_for(cfg, defenses, ref)[0]


# R refits the Python engine's model as a cross-check only where it is quick: glmer took > 5 min of CPU
# at 100k responses and clmm 15-90 s at 960 ratings (BENCHMARKS.md, bench_mixed). r_crosscheck = "on"
# runs it whatever the size.
R_CROSSCHECK_MAX_ROWS = {"identify": 20_000, "rate": 2_000}


def _r_wanted(cfg: AnalysisConfig, r_ok: bool, n_rows: int, task: str) -> tuple[bool, str]:
    if not r_ok:
        return False, ("not run: r_crosscheck = off." if cfg.r_crosscheck == "off" else "skipped: R not available.")
    if cfg.r_crosscheck != "on" and n_rows > R_CROSSCHECK_MAX_ROWS[task]:
        return False, (f"skipped: {n_rows} responses > {R_CROSSCHECK_MAX_ROWS[task]} (r_crosscheck = on forces it).")
    return True, ""


def _subsample(d: pd.DataFrame, cap: int, seed: int) -> tuple[pd.DataFrame, str]:
    pids = d["participant_id"].unique()
    if cap <= 0 or len(pids) <= cap:
        return d, f"all {len(pids)} participants"
    keep = np.random.default_rng(seed).choice(pids, cap, replace=False)
    return d[d["participant_id"].isin(keep)], f"a random subsample of {cap} of {len(pids)} participants"


def norm_covariates(d: pd.DataFrame, design: str, col: str = "norm_l2") -> tuple[str, ...]:
    """The perturbation norm as a covariate where the design does not fix it and the export has it."""
    if designs.norm_fixed(design) or col not in d:
        return ()
    x = d[col]
    return (col,) if x.notna().all() and x.nunique() > 1 else ()


def _family_adjust(out: pd.DataFrame, cfg: AnalysisConfig, lo: str, hi: str, est: str, se: str, df) -> None:
    """Holm within the family; intervals at the Holm step's level so they agree with the decision."""
    m = len(out)
    out["p_holm"] = holm(out["p"]) if m > 1 else out["p"]
    order = np.argsort(out["p"].fillna(np.inf).to_numpy(), kind="stable")
    step_alpha = np.empty(m)
    step_alpha[order] = cfg.alpha / (m - np.arange(m))
    out["ci_level"] = [f"{100 * (1 - a):.3g}%" for a in step_alpha]
    q = stats.t.ppf(1 - step_alpha / 2, df)
    out["_lo"], out["_hi"] = out[est] - q * out[se], out[est] + q * out[se]
    out["significant"] = out["p_holm"] < cfg.alpha


def primary_identify(d: pd.DataFrame, cfg: AnalysisConfig, ref: str, outcome: str,
                     adjust: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    defenses = sorted(d["defense"].unique())
    rows, notes = [], []
    for a, b in contrasts_for(cfg, defenses, ref):
        r = identify.primary_test(d, a, b, outcome, adjust_for=adjust, alpha=cfg.alpha)
        notes += [n for n in r["notes"] if n not in notes]
        rows.append({"contrast": f"{a} vs {b}", "outcome": outcome, "log_or": r["log_or"], "se": r["se"],
                     "t": r["t"], "df": r["df"], "p": r["p"], "converged": r["converged"],
                     "adjusted_for": ", ".join(r["adjusted_for"]) or "nothing", "clusters": r["cluster"]})
    out = pd.DataFrame(rows)
    _family_adjust(out, cfg, "or_ci_low", "or_ci_high", "log_or", "se", out["df"].to_numpy())
    out["odds_ratio"] = np.exp(out["log_or"])
    out["or_ci_low"], out["or_ci_high"] = np.exp(out["_lo"]), np.exp(out["_hi"])
    cols = ["contrast", "outcome", "odds_ratio", "or_ci_low", "or_ci_high", "ci_level", "log_or", "se", "t",
            "df", "p", "p_holm", "significant", "converged", "adjusted_for", "clusters"]
    return out[cols], notes


def primary_rate(d: pd.DataFrame, cfg: AnalysisConfig, ref: str,
                 adjust: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """rating ~ defense (+ norm) by least squares, cluster-robust (participant and group): the mean
    difference in rating points of the target class between defenses."""
    d = designs.adversarial_only(d)
    defenses = sorted(d["defense"].unique())
    X = treatment_design(d["defense"], ref, "defense").join(identify.covariate_columns(d, adjust))
    g1, g2, how = identify.cluster_codes(d)
    rows, notes = [], []
    for a, b in contrasts_for(cfg, defenses, ref):
        if b == ref:
            Xb = X
        else:
            Xb = treatment_design(d["defense"], b, "defense").join(identify.covariate_columns(d, adjust))
        Xb = Xb.copy()
        Xb.insert(0, "Intercept", 1.0)
        fit = cluster_ols(d["rating"].to_numpy(float), Xb, g1, g2)
        notes += [n for n in fit.notes if n not in notes]
        term = f"defense:{a}"
        est, se, t, p = fit.contrast((fit.params.index == term).astype(float)) if fit.has(term) else (np.nan,) * 4
        rows.append({"contrast": f"{a} vs {b}", "outcome": "rating", "mean_diff": est, "se": se, "t": t,
                     "df": fit.df, "p": p, "converged": bool(np.isfinite(se)),
                     "adjusted_for": ", ".join(c for c in adjust if c in fit.params.index) or "nothing",
                     "clusters": how})
    out = pd.DataFrame(rows)
    _family_adjust(out, cfg, "ci_low", "ci_high", "mean_diff", "se", out["df"].to_numpy())
    out["ci_low"], out["ci_high"] = out["_lo"], out["_hi"]
    cols = ["contrast", "outcome", "mean_diff", "ci_low", "ci_high", "ci_level", "se", "t", "df", "p", "p_holm",
            "significant", "converged", "adjusted_for", "clusters"]
    return out[cols], notes


def primary_compare(d: pd.DataFrame, cfg: AnalysisConfig, ref: str, design: str) -> tuple[pd.DataFrame, list[str]]:
    """For each pre-registered pair (a, b): trials that showed a beside b; logit P(a chosen) with a
    centred left-side term, clustered by participant (and group): odds of choosing a over b."""
    defenses = sorted(set(d["defense"]) | set(d["defense_b"]))
    rows, notes = [], []
    for a, b in contrasts_for(cfg, defenses, ref):
        m = ((d["defense"] == a) & (d["defense_b"] == b)) | ((d["defense"] == b) & (d["defense_b"] == a))
        sub = d[m]
        if len(sub) == 0 or sub["participant_id"].nunique() < 2:
            rows.append({"contrast": f"{a} vs {b}", "outcome": "chosen_defense", "log_odds": np.nan, "se": np.nan,
                         "t": np.nan, "df": 1, "p": np.nan, "converged": False, "n_trials": len(sub),
                         "adjusted_for": "nothing", "clusters": "participant"})
            continue
        a_left = (sub["defense"] == a).to_numpy(float)
        X = pd.DataFrame({"Intercept": 1.0, "a_shown_left": a_left - a_left.mean()}, index=sub.index)
        adjusted = []
        if not designs.norm_fixed(design) and {"norm_l2", "norm_l2_b"} <= set(sub.columns):
            diff = np.where(a_left == 1, sub["norm_l2"] - sub["norm_l2_b"], sub["norm_l2_b"] - sub["norm_l2"])
            diff = pd.Series(diff, index=sub.index, dtype=float)
            if diff.notna().all() and diff.nunique() > 1:
                X["norm_l2_difference"] = diff - diff.mean()
                adjusted.append("norm_l2 difference")
        g1, g2, how = identify.cluster_codes(sub)
        y = (sub["chosen_defense"] == a).to_numpy(float)
        fit = cluster_logit(y, X, g1, g2)
        notes += [n for n in fit.notes if n not in notes]
        est, se, t, p = fit.contrast((fit.params.index == "Intercept").astype(float))
        rows.append({"contrast": f"{a} vs {b}", "outcome": "chosen_defense", "log_odds": est, "se": se, "t": t,
                     "df": fit.df, "p": p, "converged": fit.converged, "n_trials": len(sub),
                     "adjusted_for": ", ".join(adjusted) or "nothing", "clusters": how})
    out = pd.DataFrame(rows)
    _family_adjust(out, cfg, "", "", "log_odds", "se", out["df"].to_numpy())
    out["odds_ratio"] = np.exp(out["log_odds"])
    out["or_ci_low"], out["or_ci_high"] = np.exp(out["_lo"]), np.exp(out["_hi"])
    out["p_choose_first"] = expit(out["log_odds"])
    cols = ["contrast", "outcome", "p_choose_first", "odds_ratio", "or_ci_low", "or_ci_high", "ci_level", "log_odds",
            "se", "t", "df", "p", "p_holm", "significant", "converged", "n_trials", "adjusted_for", "clusters"]
    return out[cols], notes


def _primary_note(cfg: AnalysisConfig, what: str, notes: list[str], table: pd.DataFrame) -> str:
    fam = cfg.primary_family
    text = (what + f" α = {cfg.alpha:g}. "
            + (f"Pre-registered family '{fam}': Holm-adjusted within it (p_holm decides); each interval is at "
               "its Holm step's level (ci_level), so it excludes the null exactly when p_holm < α."
               if fam else f"A single pre-registered contrast: no correction; {cfg.level} interval."))
    if notes:
        text += " Design matrix: " + "; ".join(notes) + "."
    if not table["converged"].all():
        text += (" WARNING: some contrasts could not be estimated (a defense with no or only hits: separation); "
                 "their rows are empty.")
    return text


def _agreement_gap(table: pd.DataFrame) -> str:
    """An agreement table without a single repeated image is empty by design, not by error: say so."""
    if len(table) and table["n_images"].max() > 0:
        return ""
    return (" No image was seen by two or more people in this study, so agreement is not estimable and the "
            "cells are empty; it needs a design that shows each image to several participants.")


def _size_note(adjust: tuple[str, ...], design: str) -> str:
    """What the perturbation-size table means for the primary test: it must say what the test did."""
    if adjust:
        return ("Where these differ between defenses the design does not hold perturbation size fixed, and the "
                f"primary test adjusts for {' + '.join(adjust)}.")
    if designs.norm_fixed(design):
        return (f"The {design} design makes the images of each (source, target) group the same size, so the "
                "primary test does not adjust for it; this table shows how well that held.")
    return "The primary test does not adjust for perturbation size (the norm does not vary, or is missing)."


MAX_BUDGET_LEVELS = 8  # more distinct ε than this: chosen per image (minimal, matched_norm), not a design factor


def design_budgets(d: pd.DataFrame) -> bool:
    """Whether ε is a design factor with a few levels worth a row each. Designs that choose ε per image
    give one value per image, and a breakdown by it is a table of single responses."""
    return "budget" in d and d["budget"].notna().any() and d["budget"].nunique() <= MAX_BUDGET_LEVELS


def perturbation_table(d: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("norm_l2", "norm_linf") if c in d and d[c].notna().any()]
    by = ["defense"] + (["budget"] if design_budgets(d) and d["budget"].notna().all() and d["budget"].nunique() > 1
                        else [])
    g = d.drop_duplicates("stimulus_id").groupby(by, observed=True)
    out = g.size().rename("n_images").to_frame()
    for c in cols:
        out[f"median_{c}"] = g[c].median()
        out[f"mean_{c}"] = g[c].mean()
    return out.reset_index()


def analyse_identify(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool,
                     design: str = "") -> tuple[Section, dict]:
    d = identify.identify_frame(d)
    kinds = designs.stimulus_kind(d)
    controls = d[kinds != "adversarial"].assign(stimulus_kind=kinds[kinds != "adversarial"])
    adv_all = d.assign(stimulus_kind=kinds)
    d = d[kinds == "adversarial"]
    if len(d) == 0:
        raise AnalysisError("the identify responses hold no adversarial stimuli (only controls)")
    defenses = sorted(d["defense"].unique())
    ref, _ = resolve_defenses(cfg, defenses, "identify")
    lv = cfg.level
    sec = Section("identify: which class do people see?",
                  f"{d['participant_id'].nunique()} participants, {d['stimulus_id'].nunique()} adversarial images, "
                  f"{len(d)} responses, defenses: {', '.join(defenses)}. Reference defense: **{ref}**."
                  + (f" Control stimuli ({len(controls)} responses) are analysed in their own section and left "
                     "out of every table here, the primary test included." if len(controls) else ""))
    r_job, r_err = None, None
    if cfg.mixed_model:
        sub, who = _subsample(d, cfg.mixed_model_max_participants, cfg.seed)
        r_ok, r_why = _r_wanted(cfg, r_ok, len(sub), "identify")
        if r_ok:  # start R now so it runs on the other core while Python works
            try:
                r_job = rcheck.start_glmer(sub, "target_hit", ref)
            except Exception as exc:  # R is optional: report, never fail the analysis
                r_err = exc
    outcome0 = cfg.outcome_for("identify")
    adjust = norm_covariates(d, design)
    primary = models.primary_model("identify", d, cfg, ref, design)
    prim_df, notes = primary.detail, primary.notes
    sec.tables.append(Table("identify_primary", "Primary test (pre-registered)", prim_df, _primary_note(
        cfg, f"Logit {outcome0} ~ defense" + (" + " + " + ".join(adjust) + " (the stimulus design does not fix "
                                              "the perturbation norm)" if adjust else "")
        + "; adversarial stimuli only; cluster-robust covariance (CRV1) by participant and (source, target) "
        "group where the export has groups, else by participant and image; t reference with "
        "(clusters of the smaller factor) - 1 df.", notes, prim_df)))
    summary = {"primary": {"identify": prim_df.to_dict("records")}, "reference": {"identify": ref},
               "models": [primary]}
    for outcome in identify.OUTCOMES:
        label = LABELS[outcome]
        rt = identify.rates_table(d, outcome, cfg.alpha)
        if outcome == "target_hit":
            summary["rates"] = {"identify": rt[rt["attack"] == "(all)"].to_dict("records")}
        sec.tables.append(Table(f"identify_rates_{outcome}", f"{outcome}: rates per defense × attack", rt,
                                f"rate = mean over participants of each participant's rate; {lv} Wilson "
                                "interval with n = participants (conservative under clustering)."))
        fit, X = identify.defense_model(d, outcome, ref)
        sec.tables.append(Table(f"identify_omnibus_{outcome}", f"{outcome}: omnibus tests across defenses",
                                identify.omnibus(d, outcome, ref, fit, X),
                                "The cluster-robust Wald test is the omnibus; the by-participant "
                                "and by-item tests check that the result holds for both random factors."
                                + (" " + "; ".join(fit.notes) + "." if fit.notes else "")))
        sec.tables.append(Table(f"identify_pairwise_{outcome}", f"{outcome}: pairwise contrasts (exploratory)",
                                identify.pairwise(d, outcome, ref, fit, X, cfg.alpha),
                                f"{lv} intervals. Holm correction (method='holm', stated, not the library "
                                "default) within each family (vs reference; other pairs) and each method. Effect "
                                "sizes: odds ratio (model), mean difference and d_z (paired t on participant "
                                "means), d_z on matched-set means (paired t, by-item). Not the pre-registered "
                                "test: see the primary table."))
        figures.rates_by_defense(rt, label, figdir / f"rates_{outcome}.png", ref, alpha=cfg.alpha)
        sec.figures.append((f"rates_{outcome}.png", f"{label} per defense with {lv} Wilson intervals"))
    # ε chosen per image is a function of the image's size (norm_l2), not a design factor: leave it out
    covs = ("attack", "budget", "norm_l2") if design_budgets(d) else ("attack", "norm_l2")
    fitc, _ = identify.defense_model(d, "target_hit", ref, covariates=covs)
    sec.tables.append(Table("identify_logit_target_hit", "Logistic regression target_hit ~ defense + "
                            + " + ".join(covs) + " (cluster-robust)",
                            identify.odds_ratio_table(fitc, cfg.alpha),
                            f"Odds ratios with {lv} CIs; numeric covariates centred; clustered by participant "
                            "and (source, target) group (or image). "
                            + ("; ".join(fitc.notes) + "." if fitc.notes else
                               "No column was constant or collinear.")
                            + ("" if "budget" in covs or "budget" not in d or d["budget"].isna().all() else
                               " ε (budget) was chosen per image, so it is not a covariate.")))
    if "norm_l2" in d and d["norm_l2"].notna().any():
        sec.tables.append(Table("identify_perturbation_size", "Perturbation size per defense", perturbation_table(d),
                                "Per image (not per response). " + _size_note(adjust, design)
                                + ("" if design_budgets(d) or "budget" not in d or d["budget"].isna().all() else
                                   f" ε was chosen per image ({d['budget'].nunique()} distinct values), so this "
                                   "table and the target-class rate are not broken down by ε; the rate against "
                                   "L2 size is in the figures.")))
    figures.participant_lines(d, "target_hit", LABELS["target_hit"], figdir / "participant_lines.png")
    sec.figures.append(("participant_lines.png", "Each participant's target-class rate across defenses"))
    if "norm_l2" in d and d["norm_l2"].notna().any():
        figures.rate_vs_perturbation(d[d["norm_l2"].notna()], "target_hit", LABELS["target_hit"],
                                     figdir / "rate_vs_perturbation.png", cfg.alpha)
        sec.figures.append(("rate_vs_perturbation.png", "target-class rate against L2 perturbation size, "
                            f"{lv} Wilson intervals"))
    if design_budgets(d):
        bt = identify.rates(d[d["budget"].notna()], "target_hit", cfg.alpha, ["defense", "budget"])
        sec.tables.append(Table("identify_rates_by_budget", "target_hit by ε (budget) and defense", bt,
                                f"Participant means per cell; {lv} Wilson intervals with n = participants."))
        figures.budget_breakdown(bt, LABELS["target_hit"], figdir / "budget_breakdown.png", alpha=cfg.alpha)
        sec.figures.append(("budget_breakdown.png", f"ε-wise breakdown of the target-class rate, {lv} intervals"))
    if cfg.mixed_model:
        mixed = models.mixed_model("identify", sub, cfg, ref)  # images of one (source, target) group are dependent
        summary["models"].append(mixed)
        fe, vc, random = mixed.detail, mixed.detail.attrs["variance"], mixed.detail.attrs["random"]
        note = ("Crossed random intercepts for participant and image"
                + (" and (source, target) group" if "group" in random else "") + f"; {lv} Wald intervals with a t "
                f"reference (df: containment degrees of freedom, e.g. images - defenses). Fitted on {who}.")
        if fe.attrs.get("engine"):
            note += f" Engine: {fe.attrs['engine']}."
        if fe.attrs.get("notes"):
            note += " " + " ".join(str(n).rstrip(".") + "." for n in fe.attrs["notes"])
        if who.startswith("a random subsample"):
            summary["subsample"] = f"the identify mixed model was fitted on {who} (mixed_model_max_participants)"
        if r_ok:
            try:
                if r_err is not None:
                    raise r_err
                rt_ = r_job.result()
                fe = fe.merge(rt_.rename(columns={"estimate": "lme4_glmer_estimate", "se": "lme4_glmer_se"}),
                              on="term", how="left")
                if "estimate" in fe:
                    fe["difference_logit"] = fe["estimate"] - fe["lme4_glmer_estimate"]
                note += " lme4::glmer (Laplace ML) on the same rows is shown beside it."
            except Exception as exc:  # R is optional: report, never fail the analysis
                note += f" R cross-check failed: {exc}"
        else:
            note += f" R cross-check (lme4) {r_why}"
        sec.tables.append(Table("identify_mixed_model", "Mixed model target_hit ~ defense + (1|participant) "
                                "+ (1|image)" + (" + (1|group)" if "group" in random else ""), fe, note))
        sec.tables.append(Table("identify_mixed_model_variance", "Mixed model: random-effect SDs", vc,
                                "Estimated SD of each random intercept."))
    rng = np.random.default_rng(cfg.seed)
    agree = agreement.rater_agreement(d, "identify", cfg.n_boot, cfg.alpha, rng)
    sec.tables.append(Table("identify_agreement", "Agreement between people (same image)", agree,
                            "Responses ('0'..'9', 'none') as nominal categories; images seen by ≥ 2 "
                            f"people; {lv} percentile CIs from resampling images." + _agreement_gap(agree)))
    hm = agreement.human_model_agreement(d, cfg.alpha)
    if len(hm):
        sec.tables.append(Table("identify_human_model", "Agreement between people and models", hm,
                                f"Share of answered responses naming the digit the model predicts for the "
                                f"same image; {lv} Wilson intervals on responses (ignore clustering)."))
    summary["controls"] = None
    if len(controls):
        csec, ctab = analyse_controls(adv_all, cfg, figdir, ref)
        summary["controls"] = ctab.to_dict("records")
        summary["extra_sections"] = [csec]
    return sec, summary


def _control_contrasts(d: pd.DataFrame):
    """Per defense and control kind: (defense, kind, the rows of its adversarial images and of those
    controls, 1.0 where the row is adversarial)."""
    for name in sorted(d["defense"].unique()):
        dd = d[d["defense"] == name]
        for kind in sorted(set(dd["stimulus_kind"]) - {"adversarial"}):
            sub = dd[dd["stimulus_kind"].isin(["adversarial", kind])]
            yield name, kind, sub, (sub["stimulus_kind"] == "adversarial").to_numpy(float)


def controls_table(d: pd.DataFrame, cfg: AnalysisConfig) -> pd.DataFrame:
    """Per defense and control kind: target rate on adversarial images vs their own controls, and the
    odds ratio adversarial/control from a logit within that defense (cluster-robust)."""
    rows = []
    for name, kind, sub, is_adv in _control_contrasts(d):
        y = sub["target_hit"].to_numpy(float)
        row = {"defense": name, "control": kind,
               "rate_adversarial": float(y[is_adv == 1].mean()) if (is_adv == 1).any() else np.nan,
               "rate_control": float(y[is_adv == 0].mean()) if (is_adv == 0).any() else np.nan,
               "n_adversarial": int(is_adv.sum()), "n_control": int((1 - is_adv).sum()),
               "odds_ratio": np.nan, "or_ci_low": np.nan, "or_ci_high": np.nan, "p": np.nan}
        if is_adv.min() < 1 and is_adv.max() > 0 and sub["participant_id"].nunique() >= 2:
            X = pd.DataFrame({"Intercept": 1.0, "adversarial": is_adv}, index=sub.index)
            g1, g2, _ = identify.cluster_codes(sub)
            try:
                fit = cluster_logit(y, X, g1, g2)
                est, se, t, p = fit.contrast((fit.params.index == "adversarial").astype(float))
                q = stats.t.ppf(1 - cfg.alpha / 2, fit.df)
                row.update(odds_ratio=np.exp(est), or_ci_low=np.exp(est - q * se), or_ci_high=np.exp(est + q * se),
                           p=p)
            except (ValueError, np.linalg.LinAlgError) as exc:
                log.warning("control contrast %s/%s failed: %s", name, kind, exc)
        row["note"] = _separation_note(row)
        rows.append(row)
    return _holm_with_notes_last(rows)


def _holm_with_notes_last(rows: list[dict]) -> pd.DataFrame:
    """A control table: Holm across its rows, the note column last so that the numbers stay in view."""
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm(out["p"])
        out = out[[c for c in out.columns if c != "note"] + ["note"]]
    return out


def _separation_note(row: dict) -> str:
    """Why a control contrast has no odds ratio: a 0 % or 100 % rate on one side (separation) is the
    strongest possible contrast, so the reader must not mistake the empty cell for missing data."""
    if np.isfinite(row["odds_ratio"]):
        return ""
    sides = [(f"{label} {100 * rate:.0f}%") for label, rate in (("control", row["rate_control"]),
                                                                 ("adversarial", row["rate_adversarial"]))
             if rate in (0.0, 1.0)]
    return ("not estimable, separation: " + ", ".join(sides)) if sides else "not estimable"


def analyse_controls(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, ref: str) -> tuple[Section, pd.DataFrame]:
    lv = cfg.level
    sec = Section("Adversarial images against their own controls",
                  "Does the perturbation's structure, not only its size, make people see the target? Each "
                  "defense's adversarial images are compared with their control twins: `control_flip` (the same "
                  "perturbation flipped, same norms, no adversarial structure) and `control_noise` (a random "
                  "perturbation with the twin's L2 and L∞ norms). An odds ratio above 1 means people named the "
                  "target more often for the adversarial image than for its control.")
    tab = controls_table(d, cfg)
    sec.tables.append(Table("controls_contrast", "Target-class rate: adversarial vs control, per defense", tab,
                            f"Logit target_hit ~ adversarial within each defense and control kind, cluster-robust "
                            f"(participant and group); {lv} intervals; Holm across all rows of this table."
                            + (" An empty odds ratio is not estimable: one side has no (or only) target answers "
                               "(separation, see the note column); Holm counts only the estimable rows."
                               if tab["odds_ratio"].isna().any() else "")))
    rt = identify.rates(d, "target_hit", cfg.alpha, ["defense", "stimulus_kind"])
    sec.tables.append(Table("controls_rates", "Target-class rate per defense and stimulus kind", rt,
                            f"Mean of participant rates; {lv} Wilson intervals with n = participants."))
    figures.controls(rt, figdir / "controls.png", cfg.level)
    sec.figures.append(("controls.png", f"Target-class rate per defense: adversarial vs controls, {lv} intervals"))
    return sec, tab


def _side_note(label: str, n: int, people: int) -> str:
    """Why one side of a control contrast cannot carry a cluster-robust estimate ("" when it can)."""
    if n == 0:
        return f"no {label} ratings"
    if people < MIN_PARTICIPANTS:
        return f"{label} ratings from {people} participant(s), fewer than {MIN_PARTICIPANTS}"
    return ""


def rate_controls_table(d: pd.DataFrame, cfg: AnalysisConfig) -> pd.DataFrame:
    """Per defense and control kind: mean rating of adversarial images and of their own controls, and the
    difference adversarial - control in rating points from least squares rating ~ adversarial within that
    defense and kind, cluster-robust by participant and group as the rate primary test (cluster_ols)."""
    rows = []
    for name, kind, sub, is_adv in _control_contrasts(d):
        y = sub["rating"].to_numpy(float)
        row = {"defense": name, "control": kind}
        for side, m in (("adversarial", is_adv == 1), ("control", is_adv == 0)):
            row[f"mean_{side}"] = float(y[m].mean()) if m.any() else np.nan
            row[f"n_{side}"] = int(m.sum())
            row[f"participants_{side}"] = int(sub.loc[m, "participant_id"].nunique())
        row.update(mean_diff=np.nan, ci_low=np.nan, ci_high=np.nan, se=np.nan, t=np.nan, df=np.nan, p=np.nan)
        why = [w for w in (_side_note(s, row[f"n_{s}"], row[f"participants_{s}"])
                           for s in ("adversarial", "control")) if w]
        if not why and np.ptp(y) == 0:  # least squares would give a zero difference with an SE of rounding noise
            why.append("not estimable: every rating in this contrast is the same")
        if not why:
            X = pd.DataFrame({"Intercept": 1.0, "adversarial": is_adv}, index=sub.index)
            g1, g2, _ = identify.cluster_codes(sub)
            fit = cluster_ols(y, X, g1, g2)
            est, se, t, p = fit.contrast((fit.params.index == "adversarial").astype(float)) \
                if fit.has("adversarial") else (np.nan,) * 4
            q = stats.t.ppf(1 - cfg.alpha / 2, fit.df)
            row.update(mean_diff=est, ci_low=est - q * se, ci_high=est + q * se, se=se, t=t, df=fit.df, p=p)
            if not np.isfinite(se):
                why.append("not estimable" + (f" ({'; '.join(fit.notes)})" if fit.notes else ""))
        row["note"] = "; ".join(why)
        rows.append(row)
    return _holm_with_notes_last(rows)


def analyse_rate_controls(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path) -> tuple[Section, pd.DataFrame]:
    """The rate task's control stimuli: the same question as analyse_controls, on the 1-7 rating."""
    lv = cfg.level
    sec = Section("rate: adversarial images against their own controls",
                  "Does the perturbation's structure, not only its size, make an image look like the target? "
                  "Each defense's adversarial images are compared with their control twins: `control_flip` (the "
                  "same perturbation flipped, same norms, no adversarial structure) and `control_noise` (a random "
                  "perturbation with the twin's L2 and L∞ norms). A positive difference means people rated the "
                  "adversarial image as looking more like the target than its control. Exploratory: the primary "
                  "test uses adversarial images only.")
    tab = rate_controls_table(d, cfg)
    sec.tables.append(Table("rate_controls_contrast", "Rating: adversarial vs control, per defense", tab,
                            "mean_adversarial, mean_control: means over ratings (the descriptives below average "
                            "participant means instead); "
                            "mean_diff = mean rating adversarial - control, in rating points, from least squares "
                            "rating ~ adversarial within each defense and control kind on its ratings; "
                            "cluster-robust covariance (CRV1) by participant and (source, target) group (or "
                            f"image), as in the rate primary test; {lv} intervals with a t reference on "
                            "(clusters of the smaller factor) - 1 df (column df); Holm across the estimable rows "
                            "of this table (p_holm); the intervals are not Holm-adjusted."
                            + (" An empty difference is explained in the note column."
                               if tab["mean_diff"].isna().any() else "")))
    desc = rate.descriptives(d, cfg.alpha, by=("defense", "stimulus_kind"))
    sec.tables.append(Table("rate_controls_descriptives", "Ratings per defense and stimulus kind", desc,
                            f"Mean of participant means with a {lv} t-interval over participants."))
    figures.mean_ratings_by_kind(desc, figdir / "rate_controls.png", lv)
    sec.figures.append(("rate_controls.png", f"Mean rating per defense: adversarial vs controls, {lv} t-intervals"))
    return sec, tab


def analyse_rate(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, r_ok: bool,
                 design: str = "") -> tuple[Section, dict]:
    d = rate.rate_frame(d)
    kinds = designs.stimulus_kind(d)
    n_controls = int((kinds != "adversarial").sum())
    with_kinds = d.assign(stimulus_kind=kinds)
    d = d[kinds == "adversarial"]
    defenses = sorted(d["defense"].unique())
    ref, _ = resolve_defenses(cfg, defenses, "rate")
    lv = cfg.level
    sec = Section("rate: how much does the image look like the target (1-7)?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} ratings. Reference: **{ref}**."
                  + (f" Control stimuli ({n_controls} ratings) are analysed in their own section and left out "
                     "of every table here, the primary test included." if n_controls else ""))
    adjust = norm_covariates(d, design)
    primary = models.primary_model("rate", d, cfg, ref, design)
    prim, notes = primary.detail, primary.notes
    sec.tables.append(Table("rate_primary", "Primary test (pre-registered)", prim, _primary_note(
        cfg, "Rating of the target class (1-7) ~ defense" + (" + " + " + ".join(adjust) if adjust else "")
        + " by least squares; mean_diff is the difference in rating points; adversarial stimuli only; "
        "cluster-robust covariance by participant and (source, target) group (or image).", notes, prim)))
    summary = {"primary": {"rate": prim.to_dict("records")}, "reference": {"rate": ref}, "models": [primary]}
    desc = rate.descriptives(d, cfg.alpha)
    summary["rates"] = {"rate": desc.to_dict("records")}
    sec.tables.append(Table("rate_descriptives", "Ratings per defense", desc,
                            f"mean of participant means with a {lv} t-interval over participants."))
    fr = rate.friedman(d)
    if len(fr):
        sec.tables.append(Table("rate_friedman", "Friedman test on participant means", fr,
                                "Participants who rated every defense; Kendall's W = χ²/(n(k-1))."))
    sec.tables.append(Table("rate_wilcoxon", "Pairwise Wilcoxon signed-rank on participant means",
                            rate.wilcoxon_pairs(d, ref),
                            "Effect size: matched-pairs rank-biserial r. Holm within each family."))
    if cfg.mixed_model:  # the ordinal model has crossed random effects (analysis.mixed): the slow part
        mixed = models.mixed_model("rate", d, cfg, ref)
        summary["models"].append(mixed)
        ordm = mixed.detail
        note = (f"Proportional-odds (cumulative) logit with crossed random intercepts for participant and image; "
                f"{lv} Wald intervals with a t reference (df: containment degrees of freedom). "
                "Odds ratio > 1: higher ratings.")
        if ordm.attrs.get("engine"):
            note += f" Engine: {ordm.attrs['engine']}."
        if ordm.attrs.get("notes"):
            note += " " + " ".join(str(n).rstrip(".") + "." for n in ordm.attrs["notes"])
        r_run, r_why = _r_wanted(cfg, r_ok, len(d), "rate")
        if r_run:
            try:
                rr = rcheck.clmm(d, ref)
                ordm = ordm.merge(rr.rename(columns={"estimate": "clmm_estimate", "se": "clmm_se"}),
                                  on="term", how="left")
                note += " ordinal::clmm (the same model in R) on the same rows is shown beside it."
            except Exception as exc:
                note += f" R cross-check failed: {exc}"
        else:
            note += f" R cross-check (ordinal::clmm) {r_why}"
        sec.tables.append(Table("rate_ordinal", "Ordinal (proportional-odds) model", ordm, note))
    rng = np.random.default_rng(cfg.seed)
    agree = agreement.rater_agreement(d, "rate", cfg.n_boot, cfg.alpha, rng)
    sec.tables.append(Table("rate_agreement", "Agreement between people (same image)", agree,
                            f"Krippendorff's alpha, ordinal metric; {lv} percentile CI from resampling images."
                            + _agreement_gap(agree)))
    figures.mean_ratings(desc, figdir / "ratings.png", level=lv)
    sec.figures.append(("ratings.png", f"Mean rating per defense, {lv} t-intervals"))
    summary["controls"] = None
    if n_controls:
        csec, ctab = analyse_rate_controls(with_kinds, cfg, figdir)
        summary["controls"] = ctab.to_dict("records")
        summary["extra_sections"] = [csec]
    return sec, summary


def analyse_compare(d: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, design: str = "") -> tuple[Section, dict]:
    d = compare.compare_frame(d)
    kinds = designs.stimulus_kind(d)
    d = d[kinds == "adversarial"]
    defenses = sorted(set(d["defense"]) | set(d["defense_b"]))
    ref, _ = resolve_defenses(cfg, defenses, "compare")
    rng = np.random.default_rng(cfg.seed)
    lv = cfg.level
    sec = Section("compare: which of two images looks more like the target?",
                  f"{d['participant_id'].nunique()} participants, {len(d)} choices. Reference: **{ref}**.")
    primary = models.primary_model("compare", d, cfg, ref, design)
    prim, notes = primary.detail, primary.notes
    sec.tables.append(Table("compare_primary", "Primary test (pre-registered)", prim, _primary_note(
        cfg, "Chosen defense: for each contrast 'a vs b', the trials that showed a beside b; logit P(a chosen) "
        "with a centred left-side term (and the L2-norm difference where the design does not fix it); "
        "odds_ratio = odds of choosing a over b; p_choose_first = P(a chosen); cluster-robust by participant "
        "and group.", notes, prim)))
    summary = {"primary": {"compare": prim.to_dict("records")}, "reference": {"compare": ref}, "models": [primary]}
    sec.tables.append(Table("compare_pairs", "P(choose A) per pair of defenses",
                            compare.pair_table(d, cfg.n_boot, cfg.alpha, rng),
                            f"{lv} CI from a participant-cluster bootstrap; exact binomial test against 0.5 "
                            "(treats choices as independent); Holm across pairs; effect size Cohen's h."))
    bt, side = compare.bradley_terry(d, ref, min(cfg.n_boot, 500), cfg.alpha, rng)
    summary["rates"] = {"compare": bt.to_dict("records")}
    sec.tables.append(Table("compare_bradley_terry", "Bradley-Terry strengths", bt,
                            "Log-odds of being chosen relative to the reference (0), from a logit with a "
                            f"left-side term; {lv} CIs from resampling participants."))
    sb = compare.side_bias(d, cfg.n_boot, cfg.alpha, rng)
    sb = pd.concat([sb, side.rename(columns={"estimate": "bt_side_log_odds"})], axis=1)
    sec.tables.append(Table("compare_side_bias", "Side (left/right) bias", sb,
                            f"Share of trials where the left image was chosen; 0.5 = no bias; {lv} intervals."))
    figures.strengths(bt, figdir / "bradley_terry.png", level=lv)
    sec.figures.append(("bradley_terry.png", f"Bradley-Terry strengths with {lv} bootstrap CIs"))
    return sec, summary


def _defenses(d: pd.DataFrame) -> list[str]:
    cols = [c for c in ("defense", "defense_b") if c in d]
    return sorted({str(x) for c in cols for x in d[c].dropna().unique() if str(x)})


def run_analysis(df: pd.DataFrame, cfg: AnalysisConfig, figdir: Path, info: StudyInfo | None = None) -> Analysis:
    info = info or StudyInfo()
    out = Analysis()
    sim = designs.simulated_mask(df)
    out.summary["simulated"] = {"responses": int(sim.sum()), "of": int(len(df)),
                                "participants": int(df.loc[sim, "participant_id"].nunique()),
                                "all_participants": int(df["participant_id"].nunique())}
    design, design_src = designs.detect(df, info.stimulus_design)
    out.summary["design"] = {"name": design, "source": design_src,
                             "estimand": designs.estimand_text(design, info.estimand)}
    ex = apply_exclusions(df, cfg)
    head = Section("Exclusions", "Rules applied in this order, before any statistic. Practice and "
                   "attention-check trials are never analysed. `analysis.R` beside this report applies the same "
                   "rules in R and refits the primary and mixed models (lme4, ordinal).")
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
    out.summary.setdefault("primary", {})
    out.summary.setdefault("rates", {})
    out.summary.setdefault("reference", {})
    out.summary["tasks"] = []
    data = ex.data
    from advlegit.analysis.tasks import TASKS  # here, not at the top: the task modules import this module

    for task, plugin in TASKS.items():
        part = data[data["task_type"] == task]
        if len(part) == 0:
            continue
        out.summary["tasks"].append(task)
        out.summary.setdefault("defenses", {})[task] = _defenses(part)
        log.info("analysing %s (%d responses)", task, len(part))
        n_people = part["participant_id"].nunique()
        if n_people < MIN_PARTICIPANTS:
            out.sections.append(Section(f"{task}: not analysed", (
                f"Only {n_people} participant(s) left after exclusions (defenses: {', '.join(_defenses(part))}); "
                f"the {task} analysis needs at "
                f"least {MIN_PARTICIPANTS} (its standard errors are clustered by participant). See the "
                "exclusions table above.")))
            continue
        extra: list[Section] = []
        try:
            sec, summ = plugin.analyse(part, cfg, figdir, r_ok, design)
            for key in ("primary", "rates", "reference"):
                out.summary[key].update(summ.get(key) or {})
            for model in summ.get("models") or []:
                out.results.setdefault(task, []).append(model)
            if summ.get("subsample"):
                out.summary["subsample"] = summ["subsample"]
            if summ.get("controls") is not None:  # each row says its task: identify's and rate's differ
                out.summary.setdefault("controls", []).extend({**r, "task": task} for r in summ["controls"])
            extra = summ.get("extra_sections") or []
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
        out.sections.extend(extra)
    out.summary["n_participants"] = int(data["participant_id"].nunique())
    out.summary["n_responses"] = int(len(data))
    return out
