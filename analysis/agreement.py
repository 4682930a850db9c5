"""Agreement: between people (Fleiss' kappa, Krippendorff's alpha with bootstrap CIs) and
between people and models (same label for the same image)."""
from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd

from advlegit.analysis.schema import model_label_columns
from advlegit.analysis.stats import wilson


def category_counts(d: pd.DataFrame, unit: str, value: str) -> pd.DataFrame:
    """units × categories counts (how many people gave each answer to each image)."""
    return pd.crosstab(d[unit], d[value])


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa, generalised to a varying number of raters per unit (units with < 2 raters
    are dropped). Equals statsmodels' fleiss_kappa when every unit has the same number."""
    counts = np.asarray(counts, float)
    n_i = counts.sum(1)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    p_j = counts.sum(0) / n_i.sum()
    P_i = ((counts**2).sum(1) - n_i) / (n_i * (n_i - 1))
    P_bar, P_e = P_i.mean(), (p_j**2).sum()
    return float((P_bar - P_e) / (1 - P_e))


def kripp_alpha(counts: np.ndarray, level: str, values: np.ndarray | None = None) -> float:
    return float(krippendorff.alpha(value_counts=counts, level_of_measurement=level,
                                    value_domain=values))


def _boot_units(stat, counts: np.ndarray, n_boot: int, alpha: float, rng) -> tuple[float, float]:
    """Percentile CI from resampling units (images) with replacement."""
    n = len(counts)
    vals = [stat(counts[rng.integers(0, n, n)]) for _ in range(n_boot)]
    vals = np.asarray(vals, float)
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return np.nan, np.nan
    return tuple(np.quantile(vals, [alpha / 2, 1 - alpha / 2]))


def rater_agreement(d: pd.DataFrame, task: str, n_boot: int, alpha: float, rng) -> pd.DataFrame:
    rows = []
    if task == "identify":
        c = category_counts(d, "stimulus_id", "response")
        counts = c.to_numpy()
        counts = counts[counts.sum(1) >= 2]
        specs = [("Fleiss' kappa (identify response)", fleiss_kappa),
                 ("Krippendorff's alpha, nominal", lambda x: kripp_alpha(x, "nominal"))]
    else:
        c = category_counts(d, "stimulus_id", "rating")
        values = np.asarray(c.columns, float)
        counts = c.to_numpy()
        counts = counts[counts.sum(1) >= 2]
        specs = [("Krippendorff's alpha, ordinal (rating)", lambda x: kripp_alpha(x, "ordinal", values))]
    n_b = min(n_boot, 300)  # alpha on thousands of units is not free; 300 resamples suffice for a 95% CI
    for name, f in specs:
        if len(counts) < 2:  # agreement needs images seen by at least two people
            rows.append({"statistic": name, "estimate": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                         "n_images": len(counts), "n_responses": int(counts.sum()), "bootstrap": 0})
            continue
        est = f(counts)
        lo, hi = _boot_units(f, counts, n_b, alpha, rng)
        rows.append({"statistic": name, "estimate": est, "ci_low": lo, "ci_high": hi,
                     "n_images": len(counts), "n_responses": int(counts.sum()), "bootstrap": n_b})
    return pd.DataFrame(rows)


def human_model_agreement(d: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Share of identify responses whose digit equals each model's label on the same image."""
    rows = []
    answered = d[d["response_label"].notna()]
    for model, col in model_label_columns(d.columns).items():
        sub = answered[answered[col].notna()]
        for name, g in [("(all)", sub)] + list(sub.groupby("defense")):
            same = (g["response_label"].astype(int) == g[col].astype(int))
            n = len(g)
            if n == 0:
                continue
            lo, hi = wilson(same.mean(), n, alpha)
            rows.append({"model": model, "defense": name, "agreement": same.mean(), "ci_low": lo,
                         "ci_high": hi, "n_responses": n})
    return pd.DataFrame(rows)
