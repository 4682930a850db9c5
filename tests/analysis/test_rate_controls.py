"""The rate task's control stimuli: adversarial images against their own controls, in rating points
(pipeline.rate_controls_table, the report section, the plain-words line)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from scipy import stats
from statsmodels.stats.multitest import multipletests

from advlegit import main
from advlegit.analysis import designs, rate
from advlegit.analysis.config import AnalysisConfig
from advlegit.analysis.pipeline import rate_controls_table
from advlegit.analysis.simulate import SimDesign, simulate, write_export

FAST = ["--no-mixed-model", "--r-crosscheck", "off", "--n-boot", "60"]
SECTION = "## rate: adversarial images against their own controls"


def _export(seed=4) -> pd.DataFrame:
    return simulate(SimDesign(task="rate", defenses=("normal", "gradreg_y", "adv"), effects={"gradreg_y": 0.9},
                              n_participants=30, trials_per_participant=18, n_attention=2, models=(),
                              controls=("control_flip", "control_noise"), control_share=0.2, control_effect=-1.2),
                    seed=seed)


def _frame(d: pd.DataFrame) -> pd.DataFrame:
    f = rate.rate_frame(d[(d["trial_kind"] == "main") & ~d["is_attention_check"]])
    return f.assign(stimulus_kind=designs.stimulus_kind(f))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return _frame(_export())


def _direct_ols(sub: pd.DataFrame) -> tuple[float, float, float]:
    """statsmodels OLS rating ~ adversarial, two-way CRV1 by participant and group, each variance raised to
    the larger one-way CRV1 variance (the floor stats._at_least_one_way documents), t on min(G) - 1 df."""
    y = sub["rating"].to_numpy(float)
    X = np.column_stack([np.ones(len(sub)), (sub["stimulus_kind"] == "adversarial").to_numpy(float)])
    g1, g2 = pd.factorize(sub["participant_id"])[0], pd.factorize(sub["group"])[0]

    def var(groups) -> float:
        return float(sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups}).cov_params()[1, 1])

    res = sm.OLS(y, X).fit()
    se = np.sqrt(max(var(np.column_stack([g1, g2])), var(g1), var(g2)))
    df = min(len(np.unique(g1)), len(np.unique(g2))) - 1
    return float(res.params[1]), float(se), float(2 * stats.t.sf(abs(res.params[1] / se), df))


def test_difference_se_and_p_equal_statsmodels_cluster_ols(frame):
    cfg = AnalysisConfig()
    tab = rate_controls_table(frame, cfg)
    assert len(tab) == 6 and set(tab["control"]) == {"control_flip", "control_noise"}
    assert (tab["note"] == "").all() and tab["mean_diff"].notna().all()
    for r in tab.itertuples():
        sub = frame[(frame["defense"] == r.defense) & frame["stimulus_kind"].isin(["adversarial", r.control])]
        est, se, p = _direct_ols(sub)
        assert r.mean_diff == pytest.approx(est, abs=1e-8)
        assert r.se == pytest.approx(se, abs=1e-8)
        assert r.p == pytest.approx(p, abs=1e-8)
        adv, ctl = sub[sub["stimulus_kind"] == "adversarial"], sub[sub["stimulus_kind"] == r.control]
        assert r.mean_diff == pytest.approx(adv["rating"].mean() - ctl["rating"].mean(), abs=1e-8)
        assert (r.n_adversarial, r.n_control) == (len(adv), len(ctl))
        assert (r.participants_adversarial, r.participants_control) == (adv["participant_id"].nunique(),
                                                                        ctl["participant_id"].nunique())
        q = stats.t.ppf(1 - cfg.alpha / 2, r.df)
        assert (r.ci_low, r.ci_high) == pytest.approx((est - q * se, est + q * se), abs=1e-8)
    assert np.allclose(tab["p_holm"], multipletests(tab["p"], method="holm")[1], rtol=0, atol=1e-12)
    assert (tab["mean_diff"] > 0).sum() >= 5  # the simulated controls are rated lower by 1.2 latent units


def test_a_defense_without_controls_gives_no_row_and_a_thin_side_says_why(frame):
    no_adv_controls = frame[(frame["defense"] != "adv") | (frame["stimulus_kind"] == "adversarial")]
    tab = rate_controls_table(no_adv_controls, AnalysisConfig())
    assert "adv" not in set(tab["defense"]) and len(tab) == 4
    cell = (frame["defense"] == "normal") & (frame["stimulus_kind"] == "control_noise")
    one = frame.loc[cell, "participant_id"].iloc[0]
    thin = frame[~(cell & (frame["participant_id"] != one))]  # one person's control_noise ratings of normal
    tab = rate_controls_table(thin, AnalysisConfig()).set_index(["defense", "control"])
    row = tab.loc[("normal", "control_noise")]
    assert row["note"] == "control ratings from 1 participant(s), fewer than 2"
    assert np.isnan(row["mean_diff"]) and np.isnan(row["p"]) and np.isnan(row["p_holm"])
    assert row["n_control"] >= 1 and np.isfinite(row["mean_control"])
    others = tab.drop(index=("normal", "control_noise"))
    assert (others["note"] == "").all() and others["p_holm"].notna().all()


def _run(path: Path, out: Path) -> str:
    res = CliRunner().invoke(main, ["analyze", str(path), "-o", str(out), *FAST], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return (out / "report.md").read_text()


def test_rate_report_has_the_controls_section_only_with_controls(tmp_path):
    d = _export()
    md = _run(write_export(d, tmp_path / "c.csv"), tmp_path / "c")
    assert SECTION in md and (tmp_path / "c/figures/rate_controls.png").is_file()
    assert "are analysed in their own section and left out of every table here, the primary test included" in md
    assert "left out." not in md.split(SECTION)[0].split("## rate:")[1]  # the old sentence is gone
    ctab = pd.read_csv(tmp_path / "c/tables/rate_controls_contrast.csv")
    assert len(ctab) == 6 and ctab["mean_diff"].notna().all()
    desc = pd.read_csv(tmp_path / "c/tables/rate_controls_descriptives.csv")
    assert len(desc) == 9 and set(desc["stimulus_kind"]) == {"adversarial", "control_flip", "control_noise"}
    plain = md.split("## Primary results")[0]
    assert "**Structure, not only size (rate).**" in plain and "normal vs control_flip:" in plain
    # the same export without its control rows: no section, and the primary test is unchanged
    plain_export = d[designs.stimulus_kind(d) == "adversarial"].drop(columns=["stimulus_kind", "twin_stimulus_id"])
    md0 = _run(write_export(plain_export, tmp_path / "a.csv"), tmp_path / "a")
    assert SECTION not in md0 and "Structure, not only size" not in md0
    assert not (tmp_path / "a/tables/rate_controls_contrast.csv").exists()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "c/tables/rate_primary.csv"),
                                  pd.read_csv(tmp_path / "a/tables/rate_primary.csv"))


def test_a_contrast_without_variation_is_explained(frame):
    same = frame.copy()
    same.loc[same["defense"] == "normal", "rating"] = 4.0
    tab = rate_controls_table(same, AnalysisConfig()).set_index(["defense", "control"])
    for kind in ("control_flip", "control_noise"):
        row = tab.loc[("normal", kind)]
        assert np.isnan(row["se"]) and np.isnan(row["p_holm"])
        assert row["note"] == "not estimable: every rating in this contrast is the same"
    assert tab.drop(index="normal", level="defense")["p_holm"].notna().all()


def test_plain_words_keep_identify_and_rate_controls_apart():
    from advlegit.analysis.plain import controls_answer

    rows = [{"task": "identify", "defense": "normal", "control": "control_flip", "rate_adversarial": 0.4,
             "rate_control": 0.1, "odds_ratio": 6.0, "or_ci_low": 2.0, "or_ci_high": 18.0, "note": ""},
            {"task": "rate", "defense": "normal", "control": "control_flip", "mean_adversarial": 4.5,
             "mean_control": 3.0, "mean_diff": 1.5, "ci_low": 0.5, "ci_high": 2.5, "note": ""},
            {"task": "rate", "defense": "adv", "control": "control_noise", "mean_adversarial": 4.0,
             "mean_control": 3.0, "mean_diff": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
             "note": "control ratings from 1 participant(s), fewer than 2"}]
    ident, rated = controls_answer({"controls": rows}, AnalysisConfig())
    assert "odds ratio 6.00" in ident and "difference" not in ident
    assert "normal vs control_flip: 4.5 vs 3.0 (difference 1.50, 95% CI 0.50 to 2.50)" in rated
    assert "adv vs control_noise: 4.0 vs 3.0 (control ratings from 1 participant(s), fewer than 2)" in rated
    assert controls_answer({"controls": rows[1:]}, AnalysisConfig())[0].startswith("**Structure, not only size (rate)")


def test_the_primary_rate_test_on_ratings_that_never_vary_reports_no_p_value(frame):
    """Least squares on a constant outcome is an exact fit: its SEs are ~1e-16 of rounding, and the
    p-values computed from them (0.56, 0.36 before this guard) mean nothing. The test says so instead."""
    from advlegit.analysis.pipeline import primary_rate

    same = frame.assign(rating=4.0)
    tab, notes = primary_rate(same, AnalysisConfig(), "normal", ())
    assert tab["p"].isna().all() and tab["se"].isna().all() and not tab["converged"].any()
    assert "not estimable: every response is 4" in notes
