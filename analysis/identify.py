"""identify task: did people name the target class (target_hit) or the original (original_hit)?"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from advlegit.analysis.designs import adversarial_only
from advlegit.analysis.stats import (
    ClusterLogit,
    cluster_logit,
    codes,
    cohens_dz,
    holm,
    treatment_design,
    wilson,
)

log = logging.getLogger(__name__)
OUTCOMES = ("target_hit", "original_hit")


def identify_frame(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["task_type"] == "identify"].copy()
    for c in OUTCOMES:
        d[c] = d[c].fillna(False).astype(bool).astype(float)
    return d


def participant_means(d: pd.DataFrame, outcome: str, by: list[str]) -> pd.DataFrame:
    return d.groupby(by + ["participant_id"], observed=True)[outcome].mean().reset_index()


def rates(d: pd.DataFrame, outcome: str, alpha: float, by: list[str]) -> pd.DataFrame:
    """Rate per cell = mean over participants of their own rate; Wilson interval on n participants.

    A participant mean lies in [0, 1], so its variance is at most p(1-p): treating each participant
    as one Bernoulli unit gives a (conservative) Wilson interval that respects clustering.
    """
    pm = participant_means(d, outcome, by)
    g = pm.groupby(by, observed=True)[outcome]
    out = pd.DataFrame({"rate": g.mean(), "n_participants": g.size()})
    out["n_responses"] = d.groupby(by, observed=True)[outcome].size()
    out["ci_low"], out["ci_high"] = wilson(out["rate"], out["n_participants"], alpha)
    return out.reset_index()


def rates_table(d: pd.DataFrame, outcome: str, alpha: float) -> pd.DataFrame:
    by_attack = rates(d, outcome, alpha, ["defense", "attack"])
    overall = rates(d, outcome, alpha, ["defense"]).assign(attack="(all)")
    return pd.concat([overall, by_attack], ignore_index=True)[
        ["defense", "attack", "rate", "ci_low", "ci_high", "n_participants", "n_responses"]]


CLUSTERS = ("participant", "participant+group", "participant+image", "auto")


def cluster_codes(d: pd.DataFrame, cluster: str = "auto") -> tuple[np.ndarray, np.ndarray | None, str]:
    """Cluster ids for the covariance: participant alone, or participant and a second factor.

    auto: participant + (source, target) group where the export has groups (images of one group are
    dependent: the same digit and target under every defense), else participant + image."""
    if cluster not in CLUSTERS:
        raise ValueError(f"cluster must be one of {', '.join(CLUSTERS)}")
    g1 = codes(d["participant_id"])
    if cluster == "participant":
        return g1, None, "participant"
    has_group = "group" in d and d["group"].notna().all() and (d["group"].astype(str) != "").all()
    if cluster in ("participant+group", "auto") and has_group:
        return g1, codes(d["group"].astype(str)), "participant and (source, target) group"
    return g1, codes(d["stimulus_id"]), "participant and image"


def covariate_columns(d: pd.DataFrame, names) -> pd.DataFrame:
    """Numeric covariates as columns (centred, so the intercept stays the reference's rate at the mean);
    categorical ones as treatment dummies. Missing or non-varying columns are left for clean_design."""
    out = pd.DataFrame(index=d.index)
    for c in names:
        if c not in d:
            continue
        col = d[c]
        if pd.api.types.is_numeric_dtype(col) and str(col.dtype) != "boolean":
            x = col.astype(float)
            out[c] = x - x.mean() if x.notna().all() else x
        else:
            vals = col.astype(str)
            out = out.join(treatment_design(vals, sorted(vals.unique())[0], c))
    return out


def defense_model(d: pd.DataFrame, outcome: str, reference: str, covariates: bool | tuple = False,
                  cluster: str = "auto") -> tuple[ClusterLogit, pd.DataFrame]:
    """outcome ~ defense (+ covariates) with cluster-robust covariance (see cluster_codes).

    covariates=True: attack + budget + norm_l2; a tuple names them. Constant or collinear columns are
    dropped (fit.notes says which); the returned design holds the columns actually fitted."""
    X = treatment_design(d["defense"], reference, "defense")
    if covariates is True:
        covariates = ("attack", "budget", "norm_l2")
    if covariates:
        X = X.join(covariate_columns(d, covariates))
    X.insert(0, "Intercept", 1.0)
    g1, g2, _ = cluster_codes(d, cluster)
    fit = cluster_logit(d[outcome].to_numpy(float), X, g1, g2)
    return fit, X[list(fit.params.index)]


def primary_test(d: pd.DataFrame, treatment: str, control: str, outcome: str = "target_hit", *,
                 adjust_for: Sequence[str] = (), cluster: str = "auto", alpha: float = 0.05) -> dict:
    """The pre-registered primary test: log-OR of treatment vs control in the cluster-robust logit
    outcome ~ defense (+ adjust_for), t reference with (number of clusters of the smaller factor) - 1 df.

    Only adversarial stimuli enter (rows whose `stimulus_kind` is a control are left out). `cluster`:
    "participant", "participant+group", "participant+image", or "auto" (participant + group where
    the export has groups, else participant + image). Returns log_or, se, t, df, p, ci_low, ci_high
    (on the log-odds scale, level 1 - alpha), converged, notes, cluster, n."""
    d = adversarial_only(d)
    y = pd.to_numeric(d[outcome].astype("Float64"), errors="coerce").astype(float)
    ok = y.notna()
    for c in adjust_for:
        if c in d:
            ok &= d[c].notna()
    d = d[ok].assign(**{outcome: y[ok]})
    fit, _ = defense_model(d, outcome, control, covariates=tuple(adjust_for), cluster=cluster)
    how = cluster_codes(d, cluster)[2]
    term = f"defense:{treatment}"
    if not fit.has(term):
        est = se = t = p = np.nan
    else:
        L = (fit.params.index == term).astype(float)
        est, se, t, p = fit.contrast(L)
    q = stats.t.ppf(1 - alpha / 2, fit.df)
    return {"log_or": est, "se": se, "t": t, "df": fit.df, "p": p,
            "ci_low": est - q * se, "ci_high": est + q * se,
            "converged": bool(fit.converged and np.isfinite(se)), "notes": fit.notes, "cluster": how,
            "adjusted_for": [c for c in adjust_for if c in fit.params.index
                             or any(x.startswith(c + ":") for x in fit.params.index)],
            "n": int(len(d))}


def odds_ratio_table(fit: ClusterLogit, alpha: float) -> pd.DataFrame:
    q = stats.t.ppf(1 - alpha / 2, fit.df)
    se = np.sqrt(np.clip(np.diag(fit.cov.to_numpy()), 0, None))
    b = np.where(np.isfinite(se), fit.params.to_numpy(), np.nan)
    t = b / se
    p = 2 * stats.t.sf(np.abs(t), fit.df)
    return pd.DataFrame({
        "term": fit.params.index, "log_odds": b, "se": se,
        "odds_ratio": np.exp(b), "or_ci_low": np.exp(b - q * se), "or_ci_high": np.exp(b + q * se),
        "t": t, "df": fit.df, "p": p,
    })


def _contrast_vector(X: pd.DataFrame, a: str, b: str) -> np.ndarray:
    return (X.columns == f"defense:{a}").astype(float) - (X.columns == f"defense:{b}").astype(float)


def omnibus(d: pd.DataFrame, outcome: str, reference: str, fit: ClusterLogit, X: pd.DataFrame) -> pd.DataFrame:
    rows = []
    dcols = [c for c in X.columns if c.startswith("defense:")]
    Lm = np.vstack([(X.columns == c).astype(float) for c in dcols])
    F, q, df2, p = fit.wald(Lm) if dcols else (np.nan, 0, fit.df, np.nan)
    k = d["defense"].nunique()
    est = fit.params[dcols][np.isfinite(np.diag(fit.cov.loc[dcols, dcols].to_numpy()))] if dcols else []
    rows.append(("Wald F, cluster-robust logit (omnibus)", F, f"{q}, {df2}", p,
                 "max |log OR| vs reference", float(np.max(np.abs(est))) if len(est) else np.nan))
    # by-participant: Friedman on participant means, participants who saw every defense
    wide = participant_means(d, outcome, ["defense"]).pivot(index="participant_id", columns="defense",
                                                             values=outcome).dropna()
    if len(wide) >= 2 and k >= 3:
        chi2, pf = stats.friedmanchisquare(*[wide[c].to_numpy() for c in wide.columns])
        w = chi2 / (len(wide) * (k - 1))
        rows.append(("Friedman on participant means (by-participant)", chi2, f"{k - 1}", pf,
                     "Kendall's W", w))
    elif len(wide) >= 2:
        res = stats.wilcoxon(wide.iloc[:, 0], wide.iloc[:, 1])
        rows.append(("Wilcoxon on participant means (by-participant)", res.statistic, "", res.pvalue, "", np.nan))
    # Cochran's Q needs exactly one binary outcome per participant × defense (else not applicable)
    n_cell = d.groupby(["participant_id", "defense"], observed=True).size().unstack()
    if n_cell.notna().all().all() and (n_cell == 1).all().all() and len(n_cell) >= 2:
        from statsmodels.stats.contingency_tables import cochrans_q
        binary = d.pivot(index="participant_id", columns="defense", values=outcome)
        cq = cochrans_q(binary.to_numpy())
        rows.append(("Cochran's Q on participant outcomes", cq.statistic, f"{cq.df}", cq.pvalue,
                     "eta²_Q = Q/(n(k-1))", cq.statistic / (len(binary) * (k - 1))))
    # by-item: Kruskal–Wallis on image means (images differ between defenses)
    im = d.groupby(["defense", "stimulus_id"], observed=True)[outcome].mean().reset_index()
    samples = [g[outcome].to_numpy() for _, g in im.groupby("defense")]
    if all(len(s) > 1 for s in samples):
        h, ph = stats.kruskal(*samples)
        eps2 = (h - k + 1) / (len(im) - k)  # epsilon² effect size for Kruskal–Wallis
        rows.append(("Kruskal-Wallis on image means (by-item)", h, f"{k - 1}", ph, "epsilon²", eps2))
    return pd.DataFrame(rows, columns=["test", "statistic", "df", "p", "effect_size", "effect"])


def pairwise(d: pd.DataFrame, outcome: str, reference: str, fit: ClusterLogit, X: pd.DataFrame,
             alpha: float) -> pd.DataFrame:
    """Every pair of defenses three ways: cluster-robust model OR, by-participant, by-item.

    Holm is applied within each family (contrasts vs reference; all pairs) and each method."""
    defenses = sorted(d["defense"].unique())
    pm = participant_means(d, outcome, ["defense"]).pivot(index="participant_id", columns="defense",
                                                          values=outcome)
    has_group = "group" in d and (d["group"] != "").all()
    unit = "group" if has_group else "stimulus_id"
    im = d.groupby(["defense", unit], observed=True)[outcome].mean().unstack("defense")
    q = stats.t.ppf(1 - alpha / 2, fit.df)
    pairs = [(a, reference) for a in defenses if a != reference]
    pairs += [(a, b) for a, b in itertools.combinations(defenses, 2)
              if reference not in (a, b)]
    rows = []
    for a, b in pairs:
        est, se, t, p = fit.contrast(_contrast_vector(X, a, b))
        both = pm[[a, b]].dropna()
        diff = (both[a] - both[b]).to_numpy()
        tp = stats.ttest_rel(both[a], both[b]) if len(both) > 1 else None
        if has_group:  # matched sets: the same digit under both defenses
            ib = im[[a, b]].dropna()
            ti = stats.ttest_rel(ib[a], ib[b]) if len(ib) > 1 else None
            di = cohens_dz((ib[a] - ib[b]).to_numpy()) if len(ib) > 1 else np.nan
            n_items = len(ib)
        else:
            ia, ib_ = im[a].dropna(), im[b].dropna()
            ti = stats.ttest_ind(ia, ib_, equal_var=False)
            sp = np.sqrt((ia.var(ddof=1) + ib_.var(ddof=1)) / 2)
            di = (ia.mean() - ib_.mean()) / sp if sp > 0 else np.nan
            n_items = len(ia) + len(ib_)
        rows.append({
            "defense": a, "versus": b, "family": "vs reference" if b == reference else "other pairs",
            "odds_ratio": np.exp(est), "or_ci_low": np.exp(est - q * se), "or_ci_high": np.exp(est + q * se),
            "p_model": p,
            "mean_diff_participants": diff.mean() if len(diff) else np.nan,
            "dz_participants": cohens_dz(diff) if len(diff) > 1 else np.nan,
            "n_participants": len(both), "p_participants": tp.pvalue if tp else np.nan,
            "d_items": di, "n_items": n_items, "p_items": ti.pvalue if ti else np.nan,
        })
    out = pd.DataFrame(rows)
    for fam in out["family"].unique():
        m = out["family"] == fam
        for col in ("p_model", "p_participants", "p_items"):
            out.loc[m, col + "_holm"] = holm(out.loc[m, col])
    order = ["defense", "versus", "family", "odds_ratio", "or_ci_low", "or_ci_high", "p_model",
             "p_model_holm", "mean_diff_participants", "dz_participants", "n_participants",
             "p_participants", "p_participants_holm", "d_items", "n_items", "p_items", "p_items_holm"]
    return out[order]


def bayes_glmm(d: pd.DataFrame, outcome: str, reference: str, alpha: float = 0.05,
               random: tuple[str, ...] = ("participant_id", "stimulus_id"), engine: str = "auto",
               fixed: str | list[str] = "defense") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crossed random intercepts for participant and image, Laplace-approximate ML
    (analysis.mixed.fit_mixed: lme4::glmer through R where installed, else the calibrated Python
    engine). Kept under its old name for callers; it is no longer Bayesian.

    Returns (fixed effects, variance components): ``fe`` has term, estimate (log-odds), se, z, p,
    ci_low, ci_high, odds_ratio, or_ci_low, or_ci_high at level 1 - alpha; ``vc`` has component
    ("participant", "image", or the column name), factor, n_levels, sd, variance. The engine and the
    notes (dropped columns, singular fits) are in ``fe.attrs["engine"]`` / ``fe.attrs["notes"]``."""
    from advlegit.analysis.mixed import fit_mixed

    res = fit_mixed(d, outcome, family="binomial", fixed=fixed, reference=reference, random=list(random),
                    alpha=alpha, engine=engine)
    fe = res.table.copy()
    vc = res.random.copy()
    vc.insert(0, "component", vc["factor"].map({"participant_id": "participant", "stimulus_id": "image"})
              .fillna(vc["factor"]))
    fe.attrs.update(engine=res.engine, notes=list(res.notes), alpha=alpha, nobs=res.nobs,
                    converged=res.converged, formula=res.formula)
    return fe, vc
