"""analysis.mixed: agreement with lme4/ordinal, robust design matrices, alpha, the ordinal path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from advlegit.analysis import mixed
from advlegit.analysis.simulate import SimDesign, simulate

R_OK, R_WHY = mixed.r_available()
needs_r = pytest.mark.skipif(not R_OK, reason=f"R with lme4/ordinal is needed for the cross-check: {R_WHY}")


def _identify(seed: int = 1, **kw) -> pd.DataFrame:
    design = dict(defenses=("normal", "gradreg_y", "distilled"), effects={"gradreg_y": 0.6},
                  n_participants=30, trials_per_participant=24, budgets=(0.1, 0.2, 0.3), budget_slope=1.0)
    design.update(kw)
    df = simulate(SimDesign(**design), seed=seed)
    return df[df["trial_kind"] == "main"].reset_index(drop=True)


def _rate(seed: int = 1, **kw) -> pd.DataFrame:
    design = dict(task="rate", defenses=("normal", "gradreg_y"), effects={"gradreg_y": 0.6},
                  n_participants=24, trials_per_participant=16)
    design.update(kw)
    df = simulate(SimDesign(**design), seed=seed)
    return df[df["trial_kind"] == "main"].reset_index(drop=True)


@pytest.fixture(scope="module")
def ident() -> pd.DataFrame:
    return _identify()


@needs_r
def test_binomial_matches_lme4_glmer(ident):
    """Same design matrix, three crossed random intercepts: estimates and SEs as glmer's."""
    kw = dict(family="binomial", fixed=["defense", "norm_l2"], reference="normal",
              random=["participant_id", "stimulus_id", "group"], alpha=0.05)
    py = mixed.fit_mixed(ident, "target_hit", engine="python", **kw)
    r = mixed.fit_mixed(ident, "target_hit", engine="r", **kw)
    assert r.engine.startswith("R lme4")
    t = py.table.merge(r.table, on="term", suffixes=("_py", "_r"))
    assert len(t) == len(py.table) == 4
    ratio = t["se_py"] / t["se_r"]
    assert ratio.between(0.97, 1.03).all(), t
    assert (np.abs(t["estimate_py"] - t["estimate_r"]) < 0.1 * t["se_r"]).all(), t
    sd = py.random.set_index("factor")["sd"] - r.random.set_index("factor")["sd"]
    assert (sd.abs() < 0.05).all()


@needs_r
def test_ordinal_matches_clmm():
    d = _rate(seed=3, n_participants=14, trials_per_participant=10)
    kw = dict(family="ordinal", fixed="defense", reference="normal", alpha=0.05)
    py = mixed.fit_mixed(d, "rating", engine="python", **kw)
    r = mixed.fit_mixed(d, "rating", engine="r", **kw)
    assert r.engine.startswith("R ordinal")
    t = py.table.merge(r.table, on="term", suffixes=("_py", "_r"))
    assert (t["se_py"] / t["se_r"]).between(0.9, 1.1).all(), t
    assert (np.abs(t["estimate_py"] - t["estimate_r"]) < 0.15 * t["se_r"]).all(), t
    assert list(py.thresholds["term"]) == list(r.thresholds["term"])


def test_ordinal_recovers_effect_and_thresholds():
    d = _rate(seed=5, n_participants=40, trials_per_participant=20)
    res = mixed.fit_mixed(d, "rating", family="ordinal", reference="normal", engine="python")
    row = res.table.set_index("term").loc["defense:gradreg_y"]
    assert row["ci_low"] < 0.6 < row["ci_high"]
    assert "Intercept" not in set(res.table["term"])
    th = res.thresholds["estimate"].to_numpy()
    assert len(th) == d["rating"].nunique() - 1 and np.all(np.diff(th) > 0)


def test_whole_data_no_subsample(ident):
    res = mixed.fit_mixed(ident, "target_hit", reference="normal", engine="python")
    assert res.nobs == len(ident) and res.subsample is None
    res.subsample = "100 of 300 participants"
    assert res.summary().splitlines()[0].startswith("SUBSAMPLE")


@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_alpha_drives_every_interval(ident, alpha):
    res = mixed.fit_mixed(ident, "target_hit", reference="normal", alpha=alpha, engine="python")
    t = res.table
    q = stats.t.ppf(1 - alpha / 2, t["df"])  # t reference with containment df
    assert np.allclose(t["ci_high"] - t["estimate"], q * t["se"])
    assert np.allclose(np.log(t["or_ci_low"]), t["ci_low"])
    # the interval excludes 0 exactly when p < alpha
    excl = (t["ci_low"] > 0) | (t["ci_high"] < 0)
    assert (excl == (t["p"] < alpha)).all()
    assert f"{100 * (1 - alpha):g}%" in res.summary()


def test_constant_and_collinear_columns_dropped_with_a_note(ident):
    d = ident.assign(budget=0.3, norm_copy=ident["norm_l2"] * 2.0 + 1.0)
    res = mixed.fit_mixed(d, "target_hit", fixed=["defense", "budget", "norm_l2", "norm_copy"],
                          reference="normal", engine="python")
    assert "budget" not in set(res.table["term"]) and "norm_copy" not in set(res.table["term"])
    assert any("budget" in n and "constant" in n for n in res.notes)
    assert any("norm_copy" in n and "collinear" in n for n in res.notes)
    assert (res.table["se"] < 5).all()


def test_separation_is_not_printed_as_a_number(ident):
    d = ident.copy()
    d.loc[d["defense"] == "distilled", "target_hit"] = False
    res = mixed.fit_mixed(d, "target_hit", reference="normal", engine="python")
    row = res.table.set_index("term").loc["defense:distilled"]
    assert np.isnan(row["se"]) and np.isnan(row["odds_ratio"])
    assert any("distilled" in n and "not identified" in n for n in res.notes)
    ok = res.table.dropna()
    assert np.isfinite(ok[["se", "or_ci_low", "or_ci_high"]].to_numpy()).all()


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_part=st.integers(3, 10), trials=st.integers(4, 10),
       const=st.floats(0.0, 10.0), flip=st.floats(0.0, 1.0), rate=st.floats(0.0, 1.0))
def test_no_absurd_standard_errors(seed, n_part, trials, const, flip, rate):
    """Random small exports, with constant columns and extreme or degenerate outcomes: every SE in the
    table is finite and at most MAX_SE, or NaN with a note saying why."""
    rng = np.random.default_rng(seed)
    d = _identify(seed=seed, n_participants=n_part, trials_per_participant=trials).assign(budget=const)
    d["target_hit"] = np.where(rng.random(len(d)) < flip, rng.random(len(d)) < rate, d["target_hit"])
    if d["target_hit"].nunique() < 2:
        d.loc[d.index[0], "target_hit"] = not bool(d["target_hit"].iloc[0])
    res = mixed.fit_mixed(d, "target_hit", fixed=["defense", "budget", "norm_l2"], reference="normal",
                          engine="python")
    se = res.table["se"]
    assert ((se.isna()) | ((se > 0) & (se <= mixed.MAX_SE))).all()
    if se.isna().any():
        assert any("not identified" in n for n in res.notes)
    assert "budget" not in set(res.table["term"])


def test_bad_arguments_are_refused(ident):
    with pytest.raises(ValueError):
        mixed.fit_mixed(ident, "target_hit", alpha=1.5)
    with pytest.raises(ValueError):
        mixed.fit_mixed(ident, "target_hit", family="poisson")
    with pytest.raises(ValueError):
        mixed.fit_mixed(ident, "rating_missing_column")


def test_containment_df_counts_the_levels_that_inform_each_term():
    """A defense whose images each belong to one defense is informed by the images (df = images -
    rank of the between-image columns); the intercept by the participants; a column no factor contains
    by the rows. Small-sample t reference instead of z (issue 13: ordinal coverage 0.929 with z)."""
    rng = np.random.default_rng(3)
    n_p, n_img = 12, 30
    img = rng.integers(0, n_img, 600)
    d = pd.DataFrame({"participant_id": rng.integers(0, n_p, 600), "stimulus_id": img,
                      "defense": np.array(["normal", "a", "b"])[img % 3], "x": rng.normal(size=600),
                      "y": rng.integers(0, 2, 600)})
    X = pd.get_dummies(d["defense"])[["a", "b"]].astype(float)
    X.insert(0, "Intercept", 1.0)
    X["x"] = d["x"]
    f = {"participant_id": d["participant_id"].to_numpy(), "stimulus_id": img}
    df = mixed.containment_df(X, f, len(d), "binomial")
    assert df.tolist() == [n_p - 1, n_img - 3, n_img - 3, 600 - 4 - (n_p - 1) - (n_img - 1)]
    # ordinal: the thresholds stand for the intercept
    assert mixed.containment_df(X.drop(columns="Intercept"), f, len(d), "ordinal")[:2].tolist() == [n_img - 3] * 2
    res = mixed.fit_mixed(d, "y", fixed="defense", reference="normal", engine="python")
    assert res.table.set_index("term").loc["defense:a", "df"] == n_img - 3
