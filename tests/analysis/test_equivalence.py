"""The package's numbers equal direct scipy/statsmodels/krippendorff calls on the same frames."""

import krippendorff
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from advlegit.analysis import agreement, compare, identify, rate
from advlegit.analysis.simulate import SimDesign, simulate
from advlegit.analysis.stats import holm, wilson

DEFENSES = ("normal", "gradreg_y", "adv")


@pytest.fixture(scope="module")
def ident():
    return identify.identify_frame(simulate(SimDesign(defenses=DEFENSES, effects={"gradreg_y": 0.8},
                                                      attacks=("tgsm", "fgsm"), budgets=(0.1, 0.3)), 5))


def _floored_se(frame, formula, g1, g2):
    """statsmodels' two-way CRV1 SEs, each raised to the larger one-way CRV1 SE (analysis.stats)."""
    fit = lambda groups: smf.logit(formula, frame).fit(disp=0, cov_type="cluster", cov_kwds={"groups": groups})  # noqa: E731
    two, one1, one2 = fit(np.column_stack([g1, g2])), fit(g1), fit(g2)
    return two, np.maximum.reduce([two.bse.to_numpy(), one1.bse.to_numpy(), one2.bse.to_numpy()])


def test_cluster_logit_matches_statsmodels_formula(ident):
    formula = "target_hit ~ C(defense, Treatment('normal'))"
    fit, X = identify.defense_model(ident, "target_hit", "normal", cluster="participant+image")
    p_codes = pd.factorize(ident["participant_id"])[0]
    ref, se = _floored_se(ident, formula, p_codes, pd.factorize(ident["stimulus_id"])[0])
    np.testing.assert_allclose(fit.params.to_numpy(), ref.params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), se, rtol=1e-6)
    prim = identify.primary_test(ident, "gradreg_y", "normal", cluster="participant+image")
    j = [i for i, n in enumerate(ref.params.index) if "gradreg_y" in n][0]
    assert prim["log_or"] == pytest.approx(ref.params.iloc[j], rel=1e-6)
    # t reference with min(#clusters) - 1 df
    g = min(ident["participant_id"].nunique(), ident["stimulus_id"].nunique()) - 1
    assert prim["p"] == pytest.approx(2 * stats.t.sf(abs(ref.params.iloc[j] / se[j]), g), rel=1e-6)
    # the default clusters by participant and (source, target) group: images of one group are dependent
    _, seg = _floored_se(ident, formula, p_codes, pd.factorize(ident["group"])[0])
    primg = identify.primary_test(ident, "gradreg_y", "normal")
    assert primg["se"] == pytest.approx(seg[j], rel=1e-6)
    assert primg["df"] == min(ident["participant_id"].nunique(), ident["group"].nunique()) - 1


def test_two_way_variance_never_below_either_one_way(ident):
    """Two-way CRV1 can undercut a one-way variance when a factor's scores cancel within clusters (a
    balanced matched design); the package's covariance never does, for any term."""
    fit, _ = identify.defense_model(ident, "target_hit", "normal", cluster="participant+group")
    fp, _ = identify.defense_model(ident, "target_hit", "normal", cluster="participant")
    assert (np.diag(fit.cov) >= np.diag(fp.cov) - 1e-12).all()


def test_wilson_and_holm_match_statsmodels():
    lo, hi = wilson(np.array([3, 0, 17]) / 20, 20)
    rlo, rhi = proportion_confint([3, 0, 17], 20, method="wilson")
    np.testing.assert_allclose(lo, rlo)
    np.testing.assert_allclose(hi, rhi)
    lo, hi = wilson(np.array([3, 0, 17]) / 20, 20, 0.1)
    rlo, rhi = proportion_confint([3, 0, 17], 20, alpha=0.1, method="wilson")
    np.testing.assert_allclose(lo, rlo)
    np.testing.assert_allclose(hi, rhi)
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    assert not np.allclose(holm(p), multipletests(p)[1])  # the library default (Holm-Sidak) differs


def test_rates_are_means_of_participant_means(ident):
    r = identify.rates(ident, "target_hit", 0.05, ["defense"]).set_index("defense")
    pm = ident.groupby(["defense", "participant_id"])["target_hit"].mean().groupby("defense").mean()
    np.testing.assert_allclose(r["rate"], pm.loc[r.index])


def test_rate_intervals_are_statsmodels_wilson_on_participants(ident):
    """The call site: each cell's interval is proportion_confint's Wilson on n participants, at the given alpha."""
    r = identify.rates(ident, "target_hit", 0.1, ["defense", "attack"])
    lo, hi = proportion_confint(r["rate"] * r["n_participants"], r["n_participants"], alpha=0.1, method="wilson")
    np.testing.assert_allclose(r["ci_low"], lo)
    np.testing.assert_allclose(r["ci_high"], hi)
    wider = identify.rates(ident, "target_hit", 0.05, ["defense", "attack"])
    assert (r["ci_high"] - r["ci_low"] < wider["ci_high"] - wider["ci_low"]).all()  # alpha reaches the call


def test_pairwise_by_participant_is_a_paired_t_test(ident):
    fit, X = identify.defense_model(ident, "target_hit", "normal")
    pw = identify.pairwise(ident, "target_hit", "normal", fit, X, 0.05).set_index(["defense", "versus"])
    wide = ident.groupby(["participant_id", "defense"])["target_hit"].mean().unstack()
    res = stats.ttest_rel(wide["gradreg_y"], wide["normal"])
    assert pw.loc[("gradreg_y", "normal"), "p_participants"] == pytest.approx(res.pvalue)
    fam = pw[pw["family"] == "vs reference"]
    np.testing.assert_allclose(fam["p_participants_holm"], multipletests(fam["p_participants"], method="holm")[1])


def test_rate_friedman_wilcoxon_match_scipy():
    d = rate.rate_frame(simulate(SimDesign(task="rate", defenses=DEFENSES, effects={"adv": 0.6}), 3))
    wide = d.groupby(["participant_id", "defense"])["rating"].mean().unstack().dropna()
    chi2, p = stats.friedmanchisquare(*[wide[c] for c in wide.columns])
    fr = rate.friedman(d).iloc[0]
    assert fr["chi2"] == pytest.approx(chi2) and fr["p"] == pytest.approx(p)
    assert fr["kendalls_w"] == pytest.approx(chi2 / (len(wide) * 2))
    wx = rate.wilcoxon_pairs(d, "normal").set_index(["defense", "versus"])
    ref = stats.wilcoxon(wide["adv"], wide["normal"])
    assert wx.loc[("adv", "normal"), "p"] == pytest.approx(ref.pvalue)
    # rank-biserial r from its definition
    diff = (wide["adv"] - wide["normal"]).to_numpy()
    diff = diff[diff != 0]
    ranks = stats.rankdata(np.abs(diff))
    r = (ranks[diff > 0].sum() - ranks[diff < 0].sum()) / ranks.sum()
    assert wx.loc[("adv", "normal"), "rank_biserial_r"] == pytest.approx(r)


def test_fleiss_matches_statsmodels_on_equal_raters():
    rng = np.random.default_rng(0)
    counts = rng.multinomial(6, [0.5, 0.3, 0.2], size=40)
    assert agreement.fleiss_kappa(counts) == pytest.approx(sm_fleiss(counts))


def test_krippendorff_value_counts_equal_reliability_data():
    d = rate.rate_frame(simulate(SimDesign(task="rate", defenses=DEFENSES), 4))
    reliability = d.pivot_table(index="participant_id", columns="stimulus_id", values="rating").to_numpy()
    counts = agreement.category_counts(d, "stimulus_id", "rating")
    ours = agreement.kripp_alpha(counts.to_numpy(), "ordinal", np.asarray(counts.columns, float))
    ref = krippendorff.alpha(reliability_data=reliability, level_of_measurement="ordinal")
    assert ours == pytest.approx(ref, rel=1e-6)


def test_compare_pairs_binomial_and_bradley_terry():
    d = compare.compare_frame(simulate(SimDesign(task="compare", defenses=DEFENSES,
                                                 effects={"gradreg_y": 1.0}, side_bias=0.4), 6))
    rng = np.random.default_rng(0)
    pt = compare.pair_table(d, 200, 0.05, rng).set_index(["defense_a", "defense_b"])
    sub = d[d["defense"].isin(["gradreg_y", "normal"]) & d["defense_b"].isin(["gradreg_y", "normal"])]
    k = int((sub["chosen_defense"] == "gradreg_y").sum())
    assert pt.loc[("gradreg_y", "normal"), "p_binomial"] == pytest.approx(stats.binomtest(k, len(sub)).pvalue)
    bt, side = compare.bradley_terry(d, "normal", 100, 0.05, rng)
    # unaggregated logit with the same design: P(left) = expit(side + s_left - s_right)
    names = ["normal", "adv", "gradreg_y"]
    X = pd.DataFrame({"side": 1.0}, index=d.index)
    for n in names[1:]:
        X[n] = (d["defense"] == n).astype(float) - (d["defense_b"] == n).astype(float)
    import statsmodels.api as sm
    ref = sm.Logit(d["chose_left"], X).fit(disp=0)
    s = bt.set_index("defense")["strength"]
    assert s["gradreg_y"] == pytest.approx(ref.params["gradreg_y"], abs=1e-4)
    assert s["adv"] == pytest.approx(ref.params["adv"], abs=1e-4)
    assert side["estimate"].iloc[0] == pytest.approx(ref.params["side"], abs=1e-4)
    assert s["gradreg_y"] > 0.5  # the simulated strength is 1.0


def test_cochrans_q_when_one_trial_per_defense():
    from statsmodels.stats.contingency_tables import cochrans_q
    d = identify.identify_frame(simulate(SimDesign(defenses=DEFENSES, effects={"gradreg_y": 1.0},
                                                   trials_per_participant=3, n_participants=60, models=()),
                                         1, core=True))
    fit, X = identify.defense_model(d, "target_hit", "normal")
    om = identify.omnibus(d, "target_hit", "normal", fit, X).set_index("test")
    ref = cochrans_q(d.pivot(index="participant_id", columns="defense", values="target_hit").to_numpy())
    assert om.loc["Cochran's Q on participant outcomes", "statistic"] == pytest.approx(ref.statistic)
    assert om.loc["Cochran's Q on participant outcomes", "p"] == pytest.approx(ref.pvalue)


def test_holm_equals_multipletests_with_ties_and_nans():
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = rng.choice([0.001, 0.01, 0.02, 0.04, 0.3, 0.9], size=rng.integers(1, 12))
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    p = np.array([0.01, np.nan, 0.03])
    out = holm(p)
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], multipletests([0.01, 0.03], method="holm")[1])
