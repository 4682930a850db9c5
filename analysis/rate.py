"""rate task (1-7): descriptives, Friedman + Kendall's W, Wilcoxon + rank-biserial, and the
proportional-odds mixed model with crossed random intercepts for participant and image.

There is no linear mixed model: statsmodels' MixedLM takes one grouping factor, and a participant-only
intercept ignores that every image is rated by many people. The interval-scale analysis is the primary
test (least squares on rating points, cluster-robust by participant and group)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from advlegit.analysis.stats import holm, rank_biserial_paired


def rate_frame(df: pd.DataFrame) -> pd.DataFrame:
    d = df[(df["task_type"] == "rate") & df["rating"].notna()].copy()
    d["rating"] = d["rating"].astype(float)
    return d


def participant_wide(d: pd.DataFrame) -> pd.DataFrame:
    return d.groupby(["participant_id", "defense"])["rating"].mean().unstack("defense")


def descriptives(d: pd.DataFrame, alpha: float, by: tuple[str, ...] = ("defense",)) -> pd.DataFrame:
    """Per cell of `by`: mean of participant means with a t-interval over participants."""
    by = list(by)
    pm = d.groupby(by + ["participant_id"], observed=True)["rating"].mean()
    rows = []
    for key, g in pm.groupby(level=by, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        n = len(g)
        m, se = g.mean(), g.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        q = stats.t.ppf(1 - alpha / 2, n - 1) if n > 1 else np.nan
        cell = np.logical_and.reduce([d[c] == k for c, k in zip(by, key, strict=True)])
        resp = d.loc[cell, "rating"]
        rows.append({**dict(zip(by, key, strict=True)), "mean": m, "ci_low": m - q * se, "ci_high": m + q * se,
                     "sd_participant_means": g.std(ddof=1), "median_response": resp.median(),
                     "n_participants": n, "n_responses": len(resp)})
    return pd.DataFrame(rows)


def friedman(d: pd.DataFrame) -> pd.DataFrame:
    wide = participant_wide(d).dropna()
    k, n = wide.shape[1], len(wide)
    if k < 3 or n < 2:
        return pd.DataFrame()
    chi2, p = stats.friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
    return pd.DataFrame([{"test": "Friedman on participant means", "chi2": chi2, "df": k - 1, "p": p,
                          "kendalls_w": chi2 / (n * (k - 1)), "n_participants": n}])


def wilcoxon_pairs(d: pd.DataFrame, reference: str) -> pd.DataFrame:
    wide = participant_wide(d)
    rows = []
    names = sorted(wide.columns)
    pairs = [(a, reference) for a in names if a != reference]
    pairs += [(a, b) for a, b in itertools.combinations(names, 2) if reference not in (a, b)]
    for a, b in pairs:
        both = wide[[a, b]].dropna()
        if len(both) < 2:
            continue
        res = stats.wilcoxon(both[a], both[b])
        rows.append({"defense": a, "versus": b,
                     "family": "vs reference" if b == reference else "other pairs",
                     "median_diff": float((both[a] - both[b]).median()),
                     "rank_biserial_r": rank_biserial_paired(both[a], both[b]),
                     "W": res.statistic, "p": res.pvalue, "n_participants": len(both)})
    out = pd.DataFrame(rows)
    if len(out):
        for fam in out["family"].unique():
            m = out["family"] == fam
            out.loc[m, "p_holm"] = holm(out.loc[m, "p"])
    return out


def ordinal_model(d: pd.DataFrame, reference: str, alpha: float, engine: str = "auto",
                  random: tuple[str, ...] = ("participant_id", "stimulus_id")) -> pd.DataFrame:
    """Cumulative-logit (proportional-odds) mixed model rating ~ defense + (1|participant) + (1|image)
    (analysis.mixed.fit_mixed, family "ordinal": ordinal::clmm through R where installed, else the
    Python Laplace engine). Log-odds are conditional on the random effects; > 0: higher ratings.
    Engine and notes in ``.attrs``; the thresholds in ``.attrs["thresholds"]``."""
    from advlegit.analysis.mixed import fit_mixed

    res = fit_mixed(d, "rating", family="ordinal", fixed="defense", reference=reference,
                    random=list(random), alpha=alpha, engine=engine)
    t = res.table
    out = pd.DataFrame({"term": t["term"], "log_odds": t["estimate"], "se": t["se"], "df": t["df"],
                        "odds_ratio": t["odds_ratio"], "or_ci_low": t["or_ci_low"],
                        "or_ci_high": t["or_ci_high"], "p": t["p"]})
    out.attrs.update(engine=res.engine, notes=list(res.notes), alpha=alpha, random=res.random,
                     thresholds=res.thresholds, converged=res.converged, formula=res.formula)
    return out
