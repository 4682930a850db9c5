"""Properties of the small building blocks, over many generated inputs."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from advlegit.analysis.agreement import fleiss_kappa
from advlegit.analysis.stats import holm, rank_biserial_paired, wilson


@given(st.integers(1, 500), st.data())
def test_wilson_interval_contains_estimate_and_stays_in_unit_interval(n, data):
    k = data.draw(st.integers(0, n))
    lo, hi = wilson(k / n, n)
    assert 0 <= lo <= k / n + 1e-12 and k / n - 1e-12 <= hi <= 1 + 1e-12


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_is_monotone_and_never_below_raw(ps):
    adj = holm(np.array(ps))
    assert np.all(adj >= np.array(ps) - 1e-12) and np.all(adj <= 1)
    order = np.argsort(ps)
    assert np.all(np.diff(adj[order]) >= -1e-12)


@settings(max_examples=50)
@given(st.integers(0, 2**31 - 1))
def test_fleiss_kappa_is_one_for_perfect_agreement_and_permutation_invariant(seed):
    rng = np.random.default_rng(seed)
    units, cats = rng.integers(3, 30), rng.integers(2, 6)
    raters = rng.integers(2, 8, units)
    perfect = np.zeros((units, cats))
    perfect[np.arange(units), rng.integers(0, cats, units)] = raters
    if (perfect.sum(0) > 0).sum() > 1:
        assert np.isclose(fleiss_kappa(perfect), 1.0)
    counts = np.array([rng.multinomial(r, np.ones(cats) / cats) for r in raters])
    k = fleiss_kappa(counts)
    assert np.isclose(k, fleiss_kappa(counts[rng.permutation(units)][:, rng.permutation(cats)]))
    assert k <= 1.0


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=30), st.lists(st.floats(-10, 10), min_size=1, max_size=30))
def test_rank_biserial_is_antisymmetric_and_bounded(x, y):
    n = min(len(x), len(y))
    x, y = np.array(x[:n]), np.array(y[:n])
    r = rank_biserial_paired(x, y)
    assert -1 <= r <= 1 and np.isclose(r, -rank_biserial_paired(y, x))


# --- robust design matrices: no table of the models holds an infinite or absurd number ---------------------
from hypothesis import HealthCheck  # noqa: E402

from advlegit.analysis.stats import B_MAX, SE_MAX  # noqa: E402


def _check_table(t, where):
    import pandas as pd
    if t is None or len(t) == 0:
        return
    for c in t.columns:
        if not pd.api.types.is_numeric_dtype(t[c]) or pd.api.types.is_bool_dtype(t[c]):
            continue
        x = t[c].to_numpy(float)
        assert not np.isinf(x).any(), (where, c, x)
        if c == "se" or c.endswith("_se"):
            assert (np.isnan(x) | (x < SE_MAX)).all(), (where, c, x)
        if c in ("log_or", "log_odds"):
            assert (np.isnan(x) | (np.abs(x) <= B_MAX)).all(), (where, c, x)
        if c == "odds_ratio":
            assert (np.isnan(x) | (x < np.exp(B_MAX))).all(), (where, c, x)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task=st.sampled_from(["identify", "rate", "compare"]), k=st.integers(2, 4), n=st.integers(3, 14),
       trials=st.integers(1, 3), base=st.floats(0.01, 0.95), eff=st.floats(-4, 4), psd=st.floats(0, 2.5),
       budgets=st.sampled_from([(0.3,), (0.1, 0.3)]), attacks=st.sampled_from([("tgsm",), ("tgsm", "fgsm")]),
       const_norm=st.booleans(), seed=st.integers(0, 2**20), family=st.sampled_from(["each_vs_reference", "all_pairs"]))
def test_no_infinite_or_absurd_numbers_in_model_tables(task, k, n, trials, base, eff, psd, budgets, attacks,
                                                         const_norm, seed, family):
    from advlegit.analysis import identify
    from advlegit.analysis.config import AnalysisConfig
    from advlegit.analysis.errors import AnalysisError
    from advlegit.analysis.pipeline import primary_compare, primary_identify, primary_rate
    from advlegit.analysis.simulate import SimDesign, simulate

    defenses = ("normal", "gradreg_y", "adv", "pgd")[:k]
    design = SimDesign(task=task, defenses=defenses, effects={"gradreg_y": eff}, baseline_rate=base,
                       participant_sd=psd, n_participants=n, trials_per_participant=trials * k,
                       budgets=budgets, attacks=attacks, models=())
    d = simulate(design, seed=seed)
    d = d[d["trial_kind"] == "main"].copy()
    if const_norm:
        d["norm_l2"] = 4.2  # a constant float column beside the intercept
    cfg = AnalysisConfig(primary_contrast=family)
    try:
        if task == "identify":
            d = identify.identify_frame(d)
            prim, _ = primary_identify(d, cfg, "normal", "target_hit", ("norm_l2",))
            _check_table(prim, "primary")
            fit, X = identify.defense_model(d, "target_hit", "normal", covariates=True)
            _check_table(identify.odds_ratio_table(fit, 0.05), "covariate logit")
            _check_table(identify.pairwise(d, "target_hit", "normal", fit, X, 0.05), "pairwise")
        elif task == "rate":
            from advlegit.analysis.rate import rate_frame
            prim, _ = primary_rate(rate_frame(d), cfg, "normal", ("norm_l2",))
            _check_table(prim, "rate primary")
        else:
            from advlegit.analysis.compare import compare_frame
            prim, _ = primary_compare(compare_frame(d), cfg, "normal", "")
            _check_table(prim, "compare primary")
    except AnalysisError:
        pass  # a clear refusal is fine; numbers that look like estimates but are not, are not
