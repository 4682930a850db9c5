"""Small statistical building blocks shared by the task analyses."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportion_confint


def wilson(p: np.ndarray | float, n: np.ndarray | float, alpha: float = 0.05):
    """Wilson score interval for a proportion p observed on n units (n may be non-integer): statsmodels'
    `proportion_confint(method="wilson")`, called with the count p * n that the call sites do not keep."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    return proportion_confint(p * n, n, alpha, method="wilson")


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
    notes: list[str] = field(default_factory=list)  # columns dropped, terms not estimable
    unstable: list[str] = field(default_factory=list)  # terms whose SE was absurd (set to NaN)

    def contrast(self, L: np.ndarray) -> tuple[float, float, float, float]:
        """Estimate, SE, t, two-sided p of L·β."""
        L = np.asarray(L, float)
        used = L != 0
        if np.isnan(self.cov.to_numpy()[np.ix_(used, used)]).any():
            return np.nan, np.nan, np.nan, np.nan
        est = float(L[used] @ self.params.to_numpy()[used])
        var = float(L[used] @ self.cov.to_numpy()[np.ix_(used, used)] @ L[used])
        se = float(np.sqrt(var)) if var > 0 else np.nan
        t = est / se if se > 0 else np.nan
        p = 2 * stats.t.sf(abs(t), self.df) if se > 0 else np.nan
        return est, se, t, p

    def has(self, term: str) -> bool:
        return term in self.params.index

    def wald(self, Lm: np.ndarray) -> tuple[float, int, float, float]:
        """Joint test of the rows of Lm: (F, numerator df, denominator df, p)."""
        Lm = Lm[~np.isnan(self.cov.to_numpy()[np.argmax(Lm != 0, axis=1)]).any(axis=1)] if len(Lm) else Lm
        if len(Lm) == 0:
            return np.nan, 0, self.df, np.nan
        b = Lm @ self.params.to_numpy()
        V = Lm @ np.nan_to_num(self.cov.to_numpy()) @ Lm.T
        chi2 = float(b @ np.linalg.solve(V, b))
        q = Lm.shape[0]
        F = chi2 / q
        return F, q, self.df, float(stats.f.sf(F, q, self.df))


B_MAX = 15.0  # |log-odds| above this (odds ratio beyond 3 million) only arises from separation
SE_MAX = 10.0  # a log-odds SE above this (an interval wider than e^±20) is not an estimate: separation


def clean_design(X: pd.DataFrame, protect: tuple[str, ...] = ("Intercept",)) -> tuple[pd.DataFrame, list[str]]:
    """Drop constant columns (besides the intercept) and columns that are linear combinations of the
    columns before them; say which and why. Earlier columns win, so put the terms of interest first."""
    notes: list[str] = []
    keep: list[str] = []
    has_intercept = "Intercept" in X.columns
    for c in X.columns:
        col = X[c].to_numpy(float)
        if not np.all(np.isfinite(col)):
            notes.append(f"{c} left out: missing or infinite values")
            continue
        if c not in protect and has_intercept and np.ptp(col) <= 1e-12 * max(1.0, np.abs(col).max()):
            notes.append(f"{c} left out: constant in these data (one value, {col[0]:g})")
            continue
        if keep:
            A = X[keep].to_numpy(float)
            scale = np.linalg.norm(col)
            if scale == 0:
                notes.append(f"{c} left out: all zero")
                continue
            coef, *_ = np.linalg.lstsq(A, col, rcond=None)
            resid = np.linalg.norm(col - A @ coef) / scale
            if resid < 1e-8 and c not in protect:
                notes.append(f"{c} left out: collinear with " + ", ".join(keep))
                continue
        keep.append(c)
    return X[keep], notes


def _cluster_cov(res, g1: np.ndarray, g2: np.ndarray | None) -> np.ndarray:
    """The covariance every cluster-robust fit here reports (logit and least squares alike): CRV1
    one-way, or two-way floored at the larger one-way variance (_at_least_one_way)."""
    V = np.asarray(res.cov_params(), float)
    return V if g2 is None else _at_least_one_way(res, V, g1, g2)


def _at_least_one_way(res, V: np.ndarray, g1: np.ndarray, g2: np.ndarray) -> np.ndarray:
    """Two-way CRV1 whose every coefficient variance is at least its larger one-way CRV1 variance.

    V_two-way = V_1 + V_2 - V_intersection can fall below a one-way variance when the second factor's
    scores cancel within its clusters — exactly what a balanced matched design does (each group is
    seen under every defense). Measured (benchmarks/bench_design_confound.py): a matched_norm design
    under a null observer rejected at 0.083-0.09 with plain two-way CRV1 at alpha 0.05, 0.033 with
    participant clusters alone. Raising each diagonal entry to the larger one-way variance keeps the
    matrix positive semi-definite (a non-negative diagonal is added) and the single-term tests at or
    above both one-way estimators: conservative (0.02-0.03 on that design) rather than liberal."""
    from statsmodels.stats.sandwich_covariance import cov_cluster_2groups

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, c1, c2 = cov_cluster_2groups(res, np.asarray(g1), np.asarray(g2))
    except (np.linalg.LinAlgError, ValueError):
        return V
    one_way = np.maximum(np.diag(c1), np.diag(c2))
    return V + np.diag(np.clip(one_way - np.diag(V), 0, None))


def cluster_logit(y: np.ndarray, X: pd.DataFrame, g1: np.ndarray, g2: np.ndarray | None = None,
                  clean: bool = True) -> ClusterLogit:
    """Fit by ML; covariance CRV1, one-way (g1) or two-way (g1, g2; Cameron, Gelbach & Miller 2011) via
    statsmodels. Constant and collinear columns are dropped first (`notes` says which).

    Inference uses t with min(G1, G2) - 1 df: with few clusters normal quantiles over-reject.
    """
    notes: list[str] = []
    if clean:
        X, notes = clean_design(X)
    groups = np.asarray(g1) if g2 is None else np.column_stack([g1, g2])
    G = len(np.unique(g1)) if g2 is None else min(len(np.unique(g1)), len(np.unique(g2)))
    yv = np.asarray(y, float)
    if len(yv) <= X.shape[1] or G < 2:
        return _unestimable(X, notes + [f"not estimable: {len(yv)} responses in {G} cluster(s) for "
                                        f"{X.shape[1]} terms"], G, len(yv))
    if yv.min() == yv.max():
        return _unestimable(X, notes + ["not estimable (separation: every response is a "
                                        + ("hit" if yv[0] == 1 else "miss") + ")"], G, len(yv))
    try:
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.Logit(yv, X).fit(
                disp=0, method="newton", maxiter=100, cov_type="cluster", cov_kwds={"groups": groups})
            bse = np.asarray(res.bse, float)
    except (np.linalg.LinAlgError, ZeroDivisionError, ValueError) as exc:
        return _unestimable(X, notes + [f"not estimable ({type(exc).__name__}: {exc})"], G, len(yv))
    V = _cluster_cov(res, g1, g2)
    if g2 is not None:
        bse = np.sqrt(np.clip(np.diag(V), 0, None))
    cov = pd.DataFrame(V, index=X.columns, columns=X.columns)
    params = np.asarray(res.params, float)
    bad = [c for c, s, b in zip(X.columns, bse, params, strict=True)
           if not np.isfinite(s) or s > SE_MAX or abs(b) > B_MAX]
    for c in X.columns:  # a 0/1 column whose rows are all hits or all misses: (quasi-)separation
        x = X[c].to_numpy(float)
        if c != "Intercept" and c not in bad and np.isin(x, (0.0, 1.0)).all() and x.any():
            m = yv[x == 1]
            if m.min() == m.max():
                bad.append(c)
    if "Intercept" not in bad and "Intercept" in X.columns:  # the reference cell itself separated
        dummies = [c for c in X.columns if c != "Intercept" and np.isin(X[c].to_numpy(float), (0.0, 1.0)).all()]
        base = (X[dummies].to_numpy(float).sum(axis=1) == 0) if dummies else np.ones(len(yv), bool)
        if base.any() and yv[base].min() == yv[base].max() and len(dummies) == X.shape[1] - 1:
            bad += ["Intercept"] + [c for c in dummies if c not in bad]
    if bad:
        notes.append("not estimable (separation: a cell with no or only hits), shown empty: " + ", ".join(bad))
        for c in bad:
            cov.loc[c, :] = np.nan
            cov.loc[:, c] = np.nan
    converged = bool(res.mle_retvals.get("converged", True)) and not bad
    return ClusterLogit(pd.Series(np.asarray(res.params), index=X.columns), cov, max(G - 1, 1), int(res.nobs),
                        res, converged, notes, bad)


def _unestimable(X: pd.DataFrame, notes: list[str], G: int, n: int) -> ClusterLogit:
    """A fit that says it could not be made: every estimate and variance NaN, the reason in notes."""
    nan = np.full(X.shape[1], np.nan)
    cov = pd.DataFrame(np.full((X.shape[1],) * 2, np.nan), index=X.columns, columns=X.columns)
    return ClusterLogit(pd.Series(nan, index=X.columns), cov, max(G - 1, 1), n, None, False, notes,
                        list(X.columns))


def cluster_ols(y: np.ndarray, X: pd.DataFrame, g1: np.ndarray, g2: np.ndarray | None = None) -> ClusterLogit:
    """Least squares with the same cluster-robust covariance as cluster_logit (same result type)."""
    X, notes = clean_design(X)
    groups = np.asarray(g1) if g2 is None else np.column_stack([g1, g2])
    G = len(np.unique(g1)) if g2 is None else min(len(np.unique(g1)), len(np.unique(g2)))
    if len(y) <= X.shape[1] or G < 2:
        return _unestimable(X, notes + [f"not estimable: {len(y)} responses in {G} cluster(s) for "
                                        f"{X.shape[1]} terms"], G, len(y))
    if np.ptp(np.asarray(y, float)) == 0:  # the fit is exact: its SEs are rounding noise and its p-values meaningless
        return _unestimable(X, notes + [f"not estimable: every response is {float(np.asarray(y)[0]):g}"], G, len(y))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sm.OLS(np.asarray(y, float), X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    except (np.linalg.LinAlgError, ZeroDivisionError, ValueError) as exc:
        return _unestimable(X, notes + [f"not estimable ({type(exc).__name__}: {exc})"], G, len(y))
    cov = pd.DataFrame(_cluster_cov(res, g1, g2), index=X.columns, columns=X.columns)
    return ClusterLogit(pd.Series(np.asarray(res.params), index=X.columns), cov, max(G - 1, 1), int(res.nobs),
                        res, True, notes, [])


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


def fmt_num(v: float, digits: int = 2) -> str:
    """A number for people: fixed decimals, no scientific notation, no '-0.00'."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    v = float(v)
    if abs(v) >= 1e4:
        return f"{v:,.0f}"
    s = f"{v:.{digits}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def fmt_p(p: float) -> str:
    if p is None or (isinstance(p, float) and np.isnan(p)):
        return ""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
