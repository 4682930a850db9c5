"""Properties of the small building blocks, over many generated inputs."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.agreement import fleiss_kappa
from analysis.stats import holm, rank_biserial_paired, wilson


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
