"""Issue 11's acceptance simulation: is the legitimacy contrast confounded by perturbation size?

Real stimulus sets (tiny models, real MNIST digits) are generated under three stimulus designs.
A simulated observer names the target with a probability that depends ONLY on the image's L2
perturbation norm (plus a participant intercept) — there is no defense effect at all. The
pre-registered primary test (defense vs reference, two-way cluster-robust logit) is then run on
many simulated studies per design:

- minimal: each model's own minimal budget, so the robust model's images are larger and the
  unadjusted test rejects the (true) null far above alpha — the confound is real;
- matched_norm: every defense's image of a (source, target) group has the same L2 norm, so the
  unadjusted test holds its level;
- fixed_budget: the same epsilon for every defense still leaves L2 differences between defenses;
  the norm-adjusted test (norm_l2 as a covariate) holds its level.

benchmarks/bench_design_confound.py runs the same simulation with more studies and writes the
rates to BENCHMARKS.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # importlib mode: repo root for benchmarks/
from benchmarks.design_confound import generate_sets, rejection_rate  # noqa: E402

pytestmark = pytest.mark.slow

N_STUDIES = 200
ALPHA = 0.05


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield generate_sets(tmp_path_factory.mktemp("sets"))


def _adv(manifest: dict) -> pd.DataFrame:
    rows = [{"group": s["group"], "defense": s["defense"], "norm_l2": s["norms"]["l2"],
             "budget": s.get("budget")} for s in manifest["stimuli"] if s.get("kind", "adversarial") == "adversarial"]
    return pd.DataFrame(rows)


def test_matched_norm_sets_have_equal_norms_within_each_group(sets):
    adv = _adv(sets["matched_norm"])
    spread = adv.groupby("group")["norm_l2"].agg(lambda v: (v.max() - v.min()) / v.max())
    assert len(spread) >= 10
    assert (spread <= 0.02 + 1e-9).all(), spread.describe()


def test_fixed_budget_uses_one_epsilon_for_every_defense(sets):
    adv = _adv(sets["fixed_budget"])
    assert adv["budget"].nunique() == 1


def test_minimal_design_confounds_defense_with_norm(sets):
    # The precondition of the whole exercise: the robust model needs larger perturbations.
    adv = _adv(sets["minimal"])
    med = adv.groupby("defense")["norm_l2"].median()
    assert med["pgd_adv"] > 1.3 * med["normal"], med


@pytest.mark.parametrize("design,adjust,expect", [
    ("minimal", False, "high"),
    ("matched_norm", False, "level"),
    ("fixed_budget", True, "level"),
])
def test_null_rejection_rate(sets, design, adjust, expect):
    rate = rejection_rate(_adv(sets[design]), n_studies=N_STUDIES, alpha=ALPHA, adjust=adjust, seed=1)
    print(json.dumps({"design": design, "adjusted": adjust, "rejection_rate": rate}))
    if expect == "high":
        assert rate > 0.5, rate
    else:
        assert rate <= 0.08, rate
