"""Validation on simulated studies where the truth is known. These tests can fail: a
miscalibrated primary test or a biased estimator moves the measured rates out of bounds."""
import numpy as np
import pytest

from advlegit.analysis.identify import identify_frame, primary_test
from advlegit.analysis.simulate import SimDesign, marginal_log_or, simulate

# small crossed design: 30 participants × 24 trials, 144 images, participant SD 0.8, image SD 0.5
DESIGN = dict(defenses=("normal", "gradreg_y", "adv"), n_participants=30, trials_per_participant=24,
              participant_sd=0.8, image_sd=0.5, models=())


def _run(design: SimDesign, n_sims: int, seed: int):
    rng = np.random.default_rng(seed)
    truth = marginal_log_or(design, "gradreg_y", "normal")
    ps, covered, est = [], [], []
    for _ in range(n_sims):
        r = primary_test(identify_frame(simulate(design, rng, core=True)), "gradreg_y", "normal")
        ps.append(r["p"])
        covered.append(r["ci_low"] <= truth <= r["ci_high"])
        est.append(r["log_or"])
    return np.array(ps), np.array(covered), np.array(est), truth


@pytest.mark.slow
def test_primary_test_null_rejection_rate():
    ps, covered, _, truth = _run(SimDesign(**DESIGN), n_sims=300, seed=2026)
    rate = float(np.mean(ps < 0.05))
    print(f"null rejection rate over {len(ps)} simulations: {rate:.3f}")
    assert truth == 0.0
    assert 0.03 <= rate <= 0.08
    # p-values are roughly uniform under the null (guards against a test that never rejects)
    assert 0.35 < float(np.mean(ps < 0.5)) < 0.65


@pytest.mark.slow
def test_odds_ratio_ci_covers_the_truth():
    design = SimDesign(**DESIGN, effects={"gradreg_y": 0.8})
    ps, covered, est, truth = _run(design, n_sims=200, seed=7)
    print(f"coverage of the marginal log-OR {truth:.3f}: {covered.mean():.3f}; power {np.mean(ps < 0.05):.3f}")
    assert covered.mean() >= 0.90
    assert abs(est.mean() - truth) < 0.05  # and the estimator is centred on it
    assert np.mean(ps < 0.05) > 0.5  # a real effect is detected


def test_marginal_truth_is_attenuated_conditional_effect():
    # the cluster-robust logit estimates the population-averaged OR, smaller than the conditional one
    design = SimDesign(**DESIGN, effects={"gradreg_y": 0.8})
    assert 0.55 < marginal_log_or(design, "gradreg_y", "normal") < 0.8
