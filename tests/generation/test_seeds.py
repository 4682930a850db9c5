"""Several training seeds (issue 15 item 5): each defense trained per seed; accuracies and the
transfer matrix as mean and interval across seeds; figures show the spread."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from advlegit.generation.config import ConfigError, from_dict
from advlegit.generation.manifest import verify
from advlegit.generation.pipeline import generate
from advlegit.generation.seeds import interval, summarize, summarize_interpretability
from advlegit.generation.train import model_specs

SEEDED = {
    "name": "seeded",
    "data": {"n_train": 200, "n_rater": 100, "n_test": 100},
    "model": {"width": 0.25},
    "training": {"steps": 3, "batch_size": 16, "seeds": [0, 7, 9]},
    "defenses": [{"name": "normal"}, {"name": "fgsm_adv"}],
    "raters": {"count": 1},
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 16},
    "stimuli": {"per_class": 1, "attack": "fgsm", "epsilons": [0.3], "require_correct": False},
}


def test_interval_is_the_t_interval_of_the_mean():
    v = [0.8, 0.9, 0.7, 0.85]
    s = interval(v)
    half = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) / 2
    assert s["mean"] == pytest.approx(np.mean(v)) and s["ci_low"] == pytest.approx(np.mean(v) - half)
    assert s["ci_high"] == pytest.approx(np.mean(v) + half) and (s["min"], s["max"]) == (0.7, 0.9)
    assert interval([0.5])["ci_low"] is None  # one seed has no interval


def test_each_defense_is_trained_per_seed_and_the_first_seed_makes_the_stimuli():
    specs = {s.name: s for s in model_specs(from_dict(SEEDED), "x")}
    assert specs["normal"].seed == 0 and specs["normal"].role == "defended"
    assert specs["normal@seed7"].seed == 7 and specs["normal@seed9"].role == "replicate"
    assert specs["fgsm_adv@seed9"].defense == "fgsm_adv" and "rater@seed7" not in specs
    assert specs["normal@seed7"].key() != specs["normal"].key()


def test_seeds_are_checked():
    with pytest.raises(ConfigError, match="training.seeds lists a seed twice"):
        from_dict({**SEEDED, "training": {"seeds": [1, 1]}})


def test_summary_lines_up_the_seeds():
    per_seed = [{"epsilons": [0.0], "clean_accuracy": {"a": acc},
                 "accuracy_vs_epsilon": {"fgsm": {"a": {"a": [acc]}}},
                 "transfer_matrix": {"fgsm": {"epsilon": 0.0, "rows_evaluated": ["a"], "cols_source": ["a"],
                                              "accuracy": [[acc]]}}} for acc in (0.5, 0.7)]
    s = summarize([3, 4], per_seed)
    assert s["clean_accuracy"]["a"]["values"] == [0.5, 0.7] and s["clean_accuracy"]["a"]["mean"] == pytest.approx(0.6)
    assert s["transfer_matrix"]["fgsm"]["mean"] == [[pytest.approx(0.6)]]
    assert s["transfer_matrix"]["fgsm"]["values"] == [[[0.5, 0.7]]]


def test_generate_reports_mean_and_interval_across_seeds(tmp_path):
    out = generate(from_dict(SEEDED), tmp_path / "set")
    m = verify(out)
    assert [x["name"] for x in m["models"]] == ["normal", "fgsm_adv", "rater"]  # replicates are not conditions
    reps = m["seed_replicates"]
    assert sorted((r["defense_model"], r["seed"]) for r in reps) == [("fgsm_adv", 7), ("fgsm_adv", 9),
                                                                     ("normal", 7), ("normal", 9)]
    import json
    metrics = json.loads((out / "metrics.json").read_text())
    seeds = metrics["seeds"]
    assert seeds["seeds"] == [0, 7, 9]
    acc = seeds["clean_accuracy"]["normal"]
    assert acc["values"][0] == metrics["clean_accuracy"]["normal"]  # the first seed is the main run
    assert acc["values"][1] == next(r["clean_accuracy"] for r in reps if r["name"] == "normal@seed7")
    assert acc["ci_low"] <= acc["mean"] <= acc["ci_high"] and len(set(acc["values"])) > 1
    tm = seeds["transfer_matrix"]["fgsm"]
    assert tm["rows_evaluated"] == ["normal", "fgsm_adv", "rater"] and len(tm["values"][0][0]) == 3
    for name in ("seeds_clean_accuracy.png", "seeds_accuracy_vs_epsilon_fgsm.png"):
        assert (out / "figures" / name).stat().st_size > 1000
    assert "mean [95% t-interval]" in (out / "tables" / "seeds.md").read_text()


def test_interpretability_summary_lines_up_the_seeds_and_leaves_out_what_a_seed_could_not_measure():
    per_seed = [{"a": {"kendall_tau": 0.2, "top_k_intersection": None}},
                {"a": {"kendall_tau": 0.4, "top_k_intersection": 0.5}},
                {"a": {"kendall_tau": 0.3, "top_k_intersection": 0.7}}]
    s = summarize_interpretability([0, 1, 2], per_seed)
    tau = s["models"]["a"]["kendall_tau"]
    assert tau["values"] == [0.2, 0.4, 0.3] and tau["mean"] == pytest.approx(0.3) and tau["n"] == 3
    assert tau["ci_low"] == pytest.approx(interval([0.2, 0.4, 0.3])["ci_low"])
    top = s["models"]["a"]["top_k_intersection"]
    assert top["values"] == [0.5, 0.7] and top["n"] == 2  # the first seed attacked no correct image


SEEDED_INTERP = {
    **SEEDED, "name": "seeded-interp",
    "defenses": [{"name": "normal"}, {"name": "cam", "kind": "normal", "architecture": "gap_cnn"}],
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 8},
    "training": {"steps": 3, "batch_size": 16, "seeds": [0, 7]},
    "interpretability": {"n_images": 6, "grid_images": 2, "ig_steps": 4, "pgd_steps": 2, "robustness_attacks": [],
                         "attack_steps": 2, "attack_restarts": 1, "attack_ig_steps": 4, "attack_k": 50, "top_k": 20,
                         "cam_attack_steps": 2, "cam_search_rounds": 3},
}


def test_interpretability_metrics_are_measured_per_seed_and_reported_with_an_interval(tmp_path):
    import csv
    import json
    out = generate(from_dict(SEEDED_INTERP), tmp_path / "set")
    metrics = json.loads((out / "metrics.json").read_text())
    across = metrics["seeds"]["interpretability"]
    assert across["seeds"] == [0, 7] and set(across["models"]) == {"normal", "cam"}
    first = metrics["interpretability"]["models"]
    for name in ("normal", "cam"):
        acc = across["models"][name]["natural_accuracy"]
        assert acc["values"][0] == first[name]["natural_accuracy"]  # the first seed's table is seed 0's
        assert acc["ci_low"] <= acc["mean"] <= acc["ci_high"]
        assert len(across["models"][name]["alignment_mean"]["values"]) == 2
    assert len(set(across["models"]["normal"]["alignment_mean"]["values"])) == 2  # seed 7's own models
    cam = across["models"]["cam"]["cam_discrepancy_two_class_relative"]
    assert cam["values"][0] == first["cam"]["cam_discrepancy"]["two_class_relative"] and cam["n"] == 2
    assert "cam_discrepancy_two_class" not in across["models"]["normal"]  # no GAP head: not measured
    assert "Interpretability across seeds [0, 7]" in (out / "tables" / "seeds.md").read_text()
    assert "Interpretability across seeds [0, 7]" in (out / "tables" / "interpretability.md").read_text()
    rows = list(csv.DictReader(open(out / "tables" / "interpretability_seeds.csv")))
    assert {(r["model"], r["metric"]) for r in rows} >= {("normal", "alignment_mean"), ("cam", "natural_accuracy")}
    assert (out / "figures" / "seeds_interpretability.png").stat().st_size > 1000
