"""Small statistical building blocks shared by the task analyses."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

Z95 = stats.norm.ppf(0.975)


def wilson(p: np.ndarray | float, n: np.ndarray | float, alpha: float = 0.05):
    """Wilson score interval for a proportion p observed on n units (n may be non-integer)."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    z = stats.norm.ppf(1 - alpha / 2)
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def holm(p: pd.Series | np.ndarray) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaNs stay NaN and are not counted.

    Named explicitly because statsmodels' multipletests defaults to Holm-Sidak. Equal to
    multipletests(method="holm") (tests/analysis/test_equivalence.py); computed here because that
    call costs ~75 ms and the report makes hundreds."""
    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q = p[ok]
    m = len(q)
    if m:
        order = np.argsort(q, kind="stable")
        adj = np.minimum(np.maximum.accumulate((m - np.arange(m)) * q[order]), 1.0)
        res = np.empty(m)
        res[order] = adj
        out[ok] = res
    return out


def codes(s: pd.Series) -> np.ndarray:
    return pd.factorize(s)[0]


@dataclass
class ClusterLogit:
    """Logit with two-way cluster-robust (participant, image) covariance."""
    params: pd.Series
    cov: pd.DataFrame
    df: int  # degrees of freedom for t reference: min(#clusters) - 1
    nobs: int
    result: object
    converged: bool = True

    def contrast(self, L: np.ndarray) -> tuple[float, float, float, float]:
        """Estimate, SE, t, two-sided p of L·β."""
        est = float(L @ self.params.to_numpy())
        se = float(np.sqrt(L @ self.cov.to_numpy() @ L))
        t = est / se if se > 0 else np.nan
        p = 2 * stats.t.sf(abs(t), self.df) if se > 0 else np.nan
        return est, se, t, p

    def wald(self, Lm: np.ndarray) -> tuple[float, int, float, float]:
        """Joint test of the rows of Lm: (F, numerator df, denominator df, p)."""
        b = Lm @ self.params.to_numpy()
        V = Lm @ self.cov.to_numpy() @ Lm.T
        chi2 = float(b @ np.linalg.solve(V, b))
        q = Lm.shape[0]
        F = chi2 / q
        return F, q, self.df, float(stats.f.sf(F, q, self.df))


def cluster_logit(y: np.ndarray, X: pd.DataFrame, g1: np.ndarray, g2: np.ndarray) -> ClusterLogit:
    """Fit by ML; covariance CRV1 two-way (Cameron, Gelbach & Miller 2011) via statsmodels.

    Inference uses t with min(G1, G2) - 1 df: with few clusters normal quantiles over-reject.
    """
    groups = np.column_stack([g1, g2])
    res = sm.Logit(np.asarray(y, float), X).fit(
        disp=0, method="newton", maxiter=100, cov_type="cluster", cov_kwds={"groups": groups})
    G = min(len(np.unique(g1)), len(np.unique(g2)))
    cov = pd.DataFrame(np.asarray(res.cov_params()), index=X.columns, columns=X.columns)
    converged = bool(res.mle_retvals.get("converged", True)) and bool(np.all(np.isfinite(res.bse)))
    return ClusterLogit(pd.Series(np.asarray(res.params), index=X.columns), cov, G - 1, int(res.nobs), res,
                        converged)


def treatment_design(levels: pd.Series, reference: str, prefix: str) -> pd.DataFrame:
    """Dummy columns for every level but the reference (treatment coding)."""
    cats = [reference] + sorted(set(levels.unique()) - {reference})
    cat = pd.Categorical(levels, categories=cats)
    d = pd.get_dummies(cat, prefix=prefix, prefix_sep=":", dtype=float).iloc[:, 1:]
    d.index = levels.index
    return d


def cohens_dz(diff: np.ndarray) -> float:
    sd = np.std(diff, ddof=1)
    return float(np.mean(diff) / sd) if sd > 0 else np.nan


def rank_biserial_paired(x: np.ndarray, y: np.ndarray) -> float:
    """Matched-pairs rank-biserial r = (R+ - R-)/(R+ + R-), zero differences dropped (Kerby 2014)."""
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    r = stats.rankdata(np.abs(d))
    rp, rm = r[d > 0].sum(), r[d < 0].sum()
    return float((rp - rm) / (rp + rm))


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
