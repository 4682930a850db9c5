"""Shared by tests/test_design_confound.py and benchmarks/bench_design_confound.py.

Generates real (tiny) stimulus sets under each stimulus design and simulates studies in which the
observer's chance of naming the target depends only on the image's L2 perturbation norm.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

DESIGNS = ("minimal", "matched_norm", "fixed_budget")
TREATMENT, CONTROL = "pgd_adv", "normal"

# Two defenses that differ a lot in robustness, tiny enough to train in seconds on 2 cores.
BASE_CONFIG = {
    "name": "confound", "seed": 0,
    "data": {"source": "embedded", "n_train": 1500, "n_rater": 300, "n_test": 400, "split_seed": 0},
    "model": {"architecture": "ross_cnn", "width": 0.25, "dropout": 0.5},
    "training": {"steps": 150, "batch_size": 64, "lr": 0.002, "seed": 0},
    "defenses": [{"name": "normal"},
                 {"name": "pgd_adv", "epsilon": 0.3, "steps": 3, "step_size": 0.15, "ramp_fraction": 0.5}],
    "raters": {"count": 1, "steps": 60},
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 50, "pgd_steps": 3,
                   "heatmap_epsilon": 0.3},
}

STIMULI = {
    "minimal": {"design": "minimal", "resolution": 0.01, "max_budget": 0.6},
    "matched_norm": {"design": "matched_norm", "norm": "l2", "resolution": 0.01, "max_budget": 0.6},
    "fixed_budget": {"design": "fixed_budget", "epsilons": [0.25]},
}
COMMON_STIMULI = {"per_class": 3, "targets": "next", "attack": "tgsm_iterative", "attack_params": {"steps": 10},
                  "require_correct": False, "seed": 0}


def generate_sets(root: Path) -> dict[str, dict]:
    """{design: manifest} of one real stimulus set per design (models trained once, then cached)."""
    from advlegit.generation.config import from_dict
    from advlegit.generation.pipeline import generate

    manifests = {}
    for design in DESIGNS:
        cfg = from_dict({**BASE_CONFIG, "name": f"confound-{design}",
                         "stimuli": {**COMMON_STIMULI, **STIMULI[design]}})
        out = generate(cfg, Path(root) / design)
        manifests[design] = json.loads((out / "manifest.json").read_text())
    return manifests


def simulate_study(adv: pd.DataFrame, rng: np.random.Generator, n_participants: int = 24,
                   slope: float = 0.8, participant_sd: float = 0.5) -> pd.DataFrame:
    """Every participant sees every (source, target) group once, the defense alternating over groups
    and participants (balanced). P(target named) = expit(-0.5 + slope * (L2 - median L2) + u)."""
    groups = sorted(adv["group"].unique())
    defenses = np.array([CONTROL, TREATMENT])
    wide = adv.pivot(index="group", columns="defense", values="norm_l2").loc[groups, list(defenses)].to_numpy()
    centre = float(adv["norm_l2"].median())
    n_groups = len(groups)
    d_idx = (np.arange(n_groups)[None, :] + np.arange(n_participants)[:, None]) % 2  # [participant, group]
    norm = wide[np.arange(n_groups)[None, :], d_idx]
    # Drawn in the order the per-answer loop drew them (per participant one normal, then one uniform per
    # group): the same studies as before, without a pandas lookup and a dict per simulated answer.
    hits = np.empty((n_participants, n_groups), dtype=bool)
    for p in range(n_participants):
        u = rng.normal(0, participant_sd)
        hits[p] = rng.random(n_groups) < expit(-0.5 + slope * (norm[p] - centre) + u)
    d = defenses[d_idx].ravel()
    g = np.tile(np.array(groups, dtype=object), n_participants)
    return pd.DataFrame({"participant_id": np.repeat([f"p{p}" for p in range(n_participants)], n_groups),
                         "stimulus_id": [f"{a}-{b}" for a, b in zip(g, d, strict=True)], "group": g, "defense": d,
                         "norm_l2": norm.ravel(), "target_hit": hits.ravel().astype(float)})


def rejection_rate(adv: pd.DataFrame, *, n_studies: int, alpha: float, adjust: bool, seed: int) -> float:
    """Share of simulated studies in which the primary test rejects 'no defense effect' at alpha."""
    from advlegit.analysis.identify import primary_test

    rng = np.random.default_rng(seed)
    rejections = 0
    for _ in range(n_studies):
        d = simulate_study(adv, rng)
        res = primary_test(d, TREATMENT, CONTROL, "target_hit", adjust_for=("norm_l2",) if adjust else ())
        rejections += bool(res["p"] < alpha)
    return rejections / n_studies
