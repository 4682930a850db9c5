"""identify task: did people name the target class (target_hit) or the original (original_hit)?"""
from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
from scipy import stats

from analysis.stats import (
    ClusterLogit, cluster_logit, codes, cohens_dz, holm, treatment_design, wilson,
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


def defense_model(d: pd.DataFrame, outcome: str, reference: str,
                  covariates: bool = False) -> tuple[ClusterLogit, pd.DataFrame]:
    """outcome ~ defense (+ attack + budget + norm_l2) with two-way clustering."""
    X = treatment_design(d["defense"], reference, "defense")
    if covariates:
        if "attack" in d and d["attack"].nunique() > 1:
            X = X.join(treatment_design(d["attack"], sorted(d["attack"].unique())[0], "attack"))
        for num in ("budget", "norm_l2"):
            if num in d and d[num].notna().all() and d[num].std() > 0:
                X[num] = d[num].astype(float)
    X.insert(0, "Intercept", 1.0)
    fit = cluster_logit(d[outcome].to_numpy(), X, codes(d["participant_id"]), codes(d["stimulus_id"]))
    return fit, X


def primary_test(d: pd.DataFrame, treatment: str, control: str, outcome: str = "target_hit") -> dict:
    """The pre-registered primary test: log-OR of treatment vs control in the two-way
    cluster-robust logit outcome ~ defense, t reference with min(#participants, #images) - 1 df."""
    fit, X = defense_model(d, outcome, control)
    L = (X.columns == f"defense:{treatment}").astype(float)
    est, se, t, p = fit.contrast(L)
    q = stats.t.ppf(0.975, fit.df)
    return {"log_or": est, "se": se, "t": t, "df": fit.df, "p": p,
            "ci_low": est - q * se, "ci_high": est + q * se, "converged": fit.converged}


def odds_ratio_table(fit: ClusterLogit, alpha: float) -> pd.DataFrame:
    q = stats.t.ppf(1 - alpha / 2, fit.df)
    se = np.sqrt(np.diag(fit.cov.to_numpy()))
    b = fit.params.to_numpy()
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
    F, q, df2, p = fit.wald(Lm)
    k = d["defense"].nunique()
    rows.append(("Wald F, two-way cluster-robust logit (primary omnibus)", F, f"{q}, {df2}", p,
                 "max |log OR| vs reference", float(np.max(np.abs(fit.params[dcols])))))
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


def bayes_glmm(d: pd.DataFrame, outcome: str, reference: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Crossed random intercepts for participant and image (statsmodels BinomialBayesMixedGLM,
    variational Bayes). Approximate Bayesian fit: no p-values; posterior SDs understate uncertainty."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM
    import scipy.sparse as sp

    X = treatment_design(d["defense"], reference, "defense")
    X.insert(0, "Intercept", 1.0)
    pc, ic = codes(d["participant_id"]), codes(d["stimulus_id"])
    n = len(d)
    Z = sp.hstack([sp.csr_matrix((np.ones(n), (np.arange(n), pc))),
                   sp.csr_matrix((np.ones(n), (np.arange(n), ic)))]).tocsr()
    ident = np.r_[np.zeros(pc.max() + 1, int), np.ones(ic.max() + 1, int)]
    model = BinomialBayesMixedGLM(d[outcome].to_numpy(float), X.to_numpy(), Z, ident,
                                  vcp_p=1.0, fe_p=10.0)
    model.exog_names[:] = list(X.columns)
    res = model.fit_vb(fit_method="L-BFGS-B", minim_opts={"maxiter": 2000})
    k = X.shape[1]
    mean, sd = res.fe_mean, res.fe_sd
    fe = pd.DataFrame({"term": X.columns, "post_mean_log_odds": mean, "post_sd": sd,
                       "odds_ratio": np.exp(mean), "cri_low": np.exp(mean - 1.96 * sd),
                       "cri_high": np.exp(mean + 1.96 * sd)})
    vc = pd.DataFrame({"component": ["participant", "image"],
                       "sd_post_mean": np.exp(res.vcp_mean[:2]),
                       "log_sd_post_sd": res.vcp_sd[:2]})
    assert len(mean) == k
    return fe, vc
