"""The report's first section, in plain words: the question, the answer with effect sizes and intervals,
the estimand of the stimulus design, the sample and exclusions, and a methods paragraph to paste."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.stats import fmt_num, fmt_p
from advlegit.contracts.exclusion_rules import describe

QUESTION = ("When a defended classifier is fooled, does the adversarial image look to people like the class "
            "the model was fooled into, and which defense makes that happen most often?")


def pct(x) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{100 * float(x):.0f}%"


def _p_words(p: float) -> str:
    s = fmt_p(p)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def _sig(row: dict, cfg: AnalysisConfig) -> str:
    if not row.get("converged", True) or not math.isfinite(row.get("p", float("nan"))):
        return "could not be estimated (separation: a defense with no or only hits)"
    p = row.get("p_holm", row["p"]) if cfg.primary_family else row["p"]
    holm = "Holm-adjusted " if cfg.primary_family else ""
    verdict = "statistically significant" if row.get("significant") else "not statistically significant"
    return f"{verdict} at α = {cfg.alpha:g} ({holm}{_p_words(p)})"


def _find(primary: list[dict], a: str, b: str) -> tuple[dict | None, int]:
    for r in primary or []:
        if r["contrast"] == f"{a} vs {b}":
            return r, 1
        if r["contrast"] == f"{b} vs {a}":
            return r, -1
    return None, 0


def _tied(ranked: pd.DataFrame, col: str) -> str:
    """The top defense in bold, or every defense sharing the top value: naming one of a tie as "the most"
    is a claim the numbers do not make."""
    top = ranked[col].iloc[0]
    names = [f"**{d}**" for d in ranked.loc[np.isclose(ranked[col], top), "defense"]]
    return names[0] if len(names) == 1 else " and ".join([", ".join(names[:-1]), names[-1]]) + " (tied)"


def identify_answer(summary: dict, cfg: AnalysisConfig) -> list[str]:
    rates = pd.DataFrame(summary.get("rates", {}).get("identify") or [])
    ref = summary.get("reference", {}).get("identify")
    prim = summary.get("primary", {}).get("identify") or []
    if rates.empty or ref is None:
        return []
    rates = rates.sort_values("rate", ascending=False)
    lv = cfg.level
    parts = ["**Identify.** People named the target class for "
             + "; ".join(f"{pct(r.rate)} of the images made against **{r.defense}** ({lv} CI {pct(r.ci_low)}–"
                         f"{pct(r.ci_high)})" for r in rates.itertuples()) + "."]
    top = rates.iloc[0]
    base = rates.set_index("defense").loc[ref]
    if top.defense == ref or top.rate <= base.rate:  # a tie with the reference is not "more"
        parts.append(f"No defense produced more target-class answers than the reference, **{ref}**.")
    else:
        diff = 100 * (top.rate - base.rate)
        tied = _tied(rates, "rate")
        text = (f"The most target-class answers came with {tied}: {fmt_num(diff, 0)} percentage points "
                f"more than the reference **{ref}** ({pct(top.rate)} vs {pct(base.rate)}).")
        row, sign = _find(prim, top.defense, ref)
        estimable = row is not None and row.get("converged", True) and math.isfinite(row.get("p", float("nan")))
        if estimable and math.isfinite(row.get("odds_ratio", float("nan"))):
            orr, lo, hi = row["odds_ratio"], row["or_ci_low"], row["or_ci_high"]
            if sign < 0:
                orr, lo, hi = 1 / orr, 1 / hi, 1 / lo
            text += (" In the pre-registered test the odds of naming the target"
                     + (f" with **{top.defense}**" if "tied" in tied else "") + f" were {fmt_num(orr)} times those "
                     f"of {ref} ({row.get('ci_level', lv)} CI {fmt_num(lo)} to {fmt_num(hi)}"
                     + (f", adjusted for {row['adjusted_for']}" if row.get("adjusted_for") not in (None, "nothing")
                        else "") + f"): {_sig(row, cfg)}.")
        elif row is not None:  # no odds ratio next to "could not be estimated"
            text += f" The pre-registered test {_sig(row, cfg)}."
        parts.append(text)
    return [" ".join(parts)]


def rate_answer(summary: dict, cfg: AnalysisConfig) -> list[str]:
    desc = pd.DataFrame(summary.get("rates", {}).get("rate") or [])
    ref = summary.get("reference", {}).get("rate")
    prim = summary.get("primary", {}).get("rate") or []
    if desc.empty or ref is None:
        return []
    desc = desc.sort_values("mean", ascending=False)
    lv = cfg.level
    text = ("**Rate.** Mean rating of how much the image looks like the target (1-7): "
            + "; ".join(f"**{r.defense}** {fmt_num(r.mean, 1)} ({lv} CI {fmt_num(r.ci_low, 1)}–{fmt_num(r.ci_high, 1)})"
                        for r in desc.itertuples()) + ".")
    top = desc.iloc[0]
    if top.defense != ref:
        row, sign = _find(prim, top.defense, ref)
        if row is not None and math.isfinite(row.get("mean_diff", float("nan"))):
            md, lo, hi = (row["mean_diff"], row["ci_low"], row["ci_high"]) if sign > 0 else (
                -row["mean_diff"], -row["ci_high"], -row["ci_low"])
            text += (f" **{top.defense}** was rated {fmt_num(md)} points higher than the reference **{ref}** "
                     f"({row.get('ci_level', lv)} CI {fmt_num(lo)} to {fmt_num(hi)}): {_sig(row, cfg)}.")
    else:
        text += f" No defense was rated higher than the reference, **{ref}**."
    return [text]


def compare_answer(summary: dict, cfg: AnalysisConfig) -> list[str]:
    bt = pd.DataFrame(summary.get("rates", {}).get("compare") or [])
    ref = summary.get("reference", {}).get("compare")
    prim = summary.get("primary", {}).get("compare") or []
    if bt.empty or ref is None:
        return []
    bt = bt.sort_values("strength", ascending=False)
    top = bt.iloc[0]
    text = ("**Compare.** Ranked by how often their image was chosen as looking more like the target: "
            + ", ".join(f"**{r.defense}**" for r in bt.itertuples()) + ".")
    if top.defense != ref:
        row, sign = _find(prim, top.defense, ref)
        if row is not None and math.isfinite(row.get("p_choose_first", float("nan"))):
            p1 = row["p_choose_first"] if sign > 0 else 1 - row["p_choose_first"]
            text += (f" Shown beside the reference **{ref}**, the **{top.defense}** image was chosen in "
                     f"{pct(p1)} of trials (odds {fmt_num(row['odds_ratio'] if sign > 0 else 1 / row['odds_ratio'])}"
                     f", {row.get('ci_level', cfg.level)} CI "
                     f"{fmt_num(row['or_ci_low'] if sign > 0 else 1 / row['or_ci_high'])} to "
                     f"{fmt_num(row['or_ci_high'] if sign > 0 else 1 / row['or_ci_low'])}): {_sig(row, cfg)}.")
    return [text]


def controls_answer(summary: dict, cfg: AnalysisConfig) -> list[str]:
    rows = summary.get("controls") or []
    out = []
    identify_bits = _identify_control_bits([r for r in rows if r.get("task", "identify") == "identify"], cfg)
    if identify_bits:
        out.append("**Structure, not only size.** Target-class answers for adversarial images vs their own "
                   "controls (same perturbation size, no adversarial structure): " + "; ".join(identify_bits) + ".")
    rate_bits = _rate_control_bits([r for r in rows if r.get("task") == "rate"], cfg)
    if rate_bits:
        out.append("**Structure, not only size (rate).** Mean rating (1-7) of adversarial images vs their own "
                   "controls (same perturbation size, no adversarial structure), difference in rating points: "
                   + "; ".join(rate_bits) + ".")
    return out


def _identify_control_bits(rows: list[dict], cfg: AnalysisConfig) -> list[str]:
    bits = []
    for r in rows:
        if math.isfinite(r.get("odds_ratio", float("nan"))):
            bits.append(f"{r['defense']} vs {r['control']}: {pct(r['rate_adversarial'])} vs {pct(r['rate_control'])} "
                        f"(odds ratio {fmt_num(r['odds_ratio'])}, {cfg.level} CI {fmt_num(r['or_ci_low'])} to "
                        f"{fmt_num(r['or_ci_high'])})")
        elif r.get("note"):  # separation: often the largest contrast of all, so it is said, not dropped
            bits.append(f"{r['defense']} vs {r['control']}: {pct(r['rate_adversarial'])} vs {pct(r['rate_control'])} "
                        f"(odds ratio {r['note']})")
    return bits


def _rate_control_bits(rows: list[dict], cfg: AnalysisConfig) -> list[str]:
    bits = []
    for r in rows:
        means = (f"{r['defense']} vs {r['control']}: {fmt_num(r['mean_adversarial'], 1)} vs "
                 f"{fmt_num(r['mean_control'], 1)}")
        if math.isfinite(r.get("mean_diff", float("nan"))):
            bits.append(f"{means} (difference {fmt_num(r['mean_diff'])}, {cfg.level} CI {fmt_num(r['ci_low'])} to "
                        f"{fmt_num(r['ci_high'])})")
        elif r.get("note"):
            bits.append(f"{means} ({r['note']})")
    return bits


def sample_text(summary: dict) -> str:
    ex = summary.get("exclusions")
    n_p, n_r = summary.get("n_participants", 0), summary.get("n_responses", 0)
    if ex is None or len(ex) == 0:
        return f"The analysis uses {n_r} responses from {n_p} participants."
    start = ex.iloc[0]
    removed = [f"{int(r.participants_removed)} participant(s) / {int(r.responses_removed)} responses by "
               f"'{r.rule}'" for r in ex.iloc[1:].itertuples() if r.responses_removed > 0]
    return (f"Of {int(start.participants_left)} participants and {int(start.responses_left)} main-trial responses in "
            f"the export, the analysis uses {n_r} responses from {n_p} participants"
            + (" after removing " + "; ".join(removed) if removed else " (no exclusions applied)") + ".")


def _has_controls(summary: dict, task: str) -> bool:
    return any(r.get("task", "identify") == task for r in summary.get("controls") or [])


def methods_text(summary: dict, cfg: AnalysisConfig) -> str:
    tasks = summary.get("tasks", [])
    design = summary.get("design", {})
    fam = cfg.primary_family
    family = {"each_vs_reference": "each defense against the reference defense",
              "all_pairs": "every pair of defenses"}.get(fam or "", "")
    contrasts = (f"{family}, with Holm's step-down correction within this pre-registered family"
                 if fam else f"a single pre-registered contrast ({' vs '.join(cfg.primary_contrast)})")
    adj = ("" if design.get("name") == "matched_norm" else
           " adjusted for the L2 norm of the perturbation (the stimulus design does not hold it fixed),")
    rules = [describe(r) for r in cfg.exclusion_rules()]
    t = ["Exclusions were applied in this order: participants the study app marked excluded, participants who "
         "did not complete the study" + "".join(f"; {r}" for r in rules) + "."]
    if "identify" in tasks:
        t.append(f"For the identification task, whether the participant named the target class was modelled by "
                 f"logistic regression on defense (treatment coding against the reference defense),{adj} fitted to "
                 "adversarial stimuli only (control stimuli were analysed separately).")
    if "rate" in tasks:
        t.append(f"For the rating task, the 1-7 rating of resemblance to the target class was regressed on defense "
                 f"by least squares,{adj} on adversarial stimuli only"
                 + (" (control stimuli were analysed separately)." if _has_controls(summary, "rate") else "."))
    if "compare" in tasks:
        t.append("For the two-alternative task, the choice of one defense's image over the other's was modelled "
                 "per pair of defenses by logistic regression with a centred term for the side it was shown on.")
    t.append("Standard errors were cluster-robust (CRV1), clustered two-way by participant and by the "
             "(source image, target class) group of the stimulus, with a t reference distribution on "
             "(number of clusters of the smaller factor - 1) degrees of freedom. The pre-registered primary "
             f"tests compared {contrasts}, at α = {cfg.alpha:g} (two-sided); all intervals are "
             f"{cfg.level} intervals (Holm-adjusted intervals at each step's level for the primary family). "
             "Analyses were run with advlegit's analysis package (statsmodels).")
    return " ".join(t)


# The stimulus set states its estimand for naming the target; other tasks measure "seen as the target" otherwise.
MEASURED_BY = {
    "rate": "the 1-7 rating of how much the image looks like the target",
    "compare": "which of two images, shown side by side, is chosen as looking more like the target",
}


def _measured_by(summary: dict) -> str:
    tasks = [t for t in summary.get("tasks", []) if t in MEASURED_BY]
    if not tasks or "identify" in summary.get("tasks", []):
        return ""
    return (" (The set states this for naming the target; this study measures it by "
            + "; ".join(MEASURED_BY[t] for t in tasks) + ".)")


def section(summary: dict, cfg: AnalysisConfig) -> str:
    design = summary.get("design", {})
    name = design.get("name") or "unknown"
    out = ["## In plain words\n", f"**Question.** {QUESTION}\n"]
    answers = (identify_answer(summary, cfg) + rate_answer(summary, cfg) + compare_answer(summary, cfg)
               + controls_answer(summary, cfg))
    out.append("**Answer.**\n")
    out += [a + "\n" for a in answers] or ["No task could be analysed (see below).\n"]
    src = design.get("source", "not recorded")
    out.append(f"**Stimulus design: {name}** ({'from ' + src if src != 'not recorded' else 'not recorded'}). "
               f"What the comparison estimates: {design.get('estimand', '')}{_measured_by(summary)}\n")
    out.append(f"**Sample.** {sample_text(summary)}\n")
    out.append(f"**Methods (to paste).** {methods_text(summary, cfg)}\n")
    return "\n".join(out)
