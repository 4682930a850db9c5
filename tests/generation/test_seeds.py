"""Several training seeds (issue 15 item 5): each defense trained per seed; accuracies and the
transfer matrix as mean and interval across seeds; figures show the spread."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from advlegit.generation.config import ConfigError, from_dict
from advlegit.generation.manifest import verify
from advlegit.generation.pipeline import generate
from advlegit.generation.seeds import (
    interval,
    reference_model,
    summarize,
    summarize_interpretability,
    write_table,
)
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
    vs = seeds["vs_reference"]
    assert vs["reference"] == "normal" and list(vs["models"]) == ["fgsm_adv"]  # the rater is no defense
    clean = vs["models"]["fgsm_adv"]["clean_accuracy"]
    assert clean["values"] == pytest.approx([a - b for a, b in zip(seeds["clean_accuracy"]["fgsm_adv"]["values"],
                                                                    acc["values"], strict=True)])
    assert clean["n"] == 3 and len(vs["models"]["fgsm_adv"]["accuracy_vs_epsilon"]["fgsm"]) == 2
    assert "| fgsm_adv − normal | " in (out / "tables" / "seeds.md").read_text()
    import csv
    rows = list(csv.DictReader(open(out / "tables" / "seeds_vs_reference.csv")))
    assert {(r["model"], r["metric"]) for r in rows} == {("fgsm_adv", "clean_accuracy"),
                                                          ("fgsm_adv", "white_box_fgsm@0"),
                                                          ("fgsm_adv", "white_box_fgsm@0.3")}
    assert (out / "figures" / "seeds_vs_reference.png").stat().st_size > 1000


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
    vs = across["vs_reference"]
    assert vs["reference"] == "normal" and list(vs["models"]) == ["cam"]
    acc = vs["models"]["cam"]["natural_accuracy"]
    assert acc["values"] == pytest.approx([c - n for c, n in zip(across["models"]["cam"]["natural_accuracy"]["values"],
                                                                 across["models"]["normal"]["natural_accuracy"]["values"],
                                                                 strict=True)])
    assert "cam_discrepancy_two_class" not in vs["models"]["cam"]  # the reference has no GAP head: no pair
    text = (out / "tables" / "interpretability.md").read_text()
    assert "Interpretability, paired difference from the reference" in text and "| cam − normal | " in text
    rows = list(csv.DictReader(open(out / "tables" / "seeds_vs_reference.csv")))
    assert ("cam", "natural_accuracy") in {(r["model"], r["metric"]) for r in rows}


# Paired differences from the reference model (the seeds pair the models: same split, same images).
NORMAL = [0.90, 0.80, 0.85]
GRADREG = [0.86, 0.79, 0.80]
WHITE_BOX = {"normal": [[0.90, 0.30], [0.80, 0.20], [0.85, 0.40]],
             "gradreg": [[0.86, 0.50], [0.79, 0.45], [0.80, 0.52]]}


def _evaluation(i: int) -> dict:
    """seed i's evaluate() result for normal, gradreg (both attacked) and a rater (only evaluated)."""
    return {"epsilons": [0.0, 0.3], "clean_accuracy": {"normal": NORMAL[i], "gradreg": GRADREG[i], "rater": 0.9},
            "accuracy_vs_epsilon": {"fgsm": {src: {ev: (WHITE_BOX[src][i] if ev == src else [0.5, 0.5])
                                                   for ev in ("normal", "gradreg", "rater")}
                                             for src in ("normal", "gradreg")}}}


def _scipy_paired(defense: list[float], reference: list[float]) -> tuple[float, float, float]:
    """mean and 95% interval of defense - reference, from scipy's paired t-test (not from seeds.py)."""
    res = stats.ttest_rel(defense, reference)
    ci = res.confidence_interval(0.95)
    return float(np.mean(np.subtract(defense, reference))), float(ci.low), float(ci.high)


def test_paired_difference_from_the_reference_is_scipys_paired_t_interval():
    s = summarize([0, 7, 9], [_evaluation(i) for i in range(3)], reference="normal")
    vs = s["vs_reference"]
    assert vs["reference"] == "normal" and list(vs["models"]) == ["gradreg"]  # not the reference, not the rater
    clean = vs["models"]["gradreg"]["clean_accuracy"]
    mean, low, high = _scipy_paired(GRADREG, NORMAL)
    assert (clean["mean"], clean["ci_low"], clean["ci_high"]) == (pytest.approx(mean), pytest.approx(low),
                                                                  pytest.approx(high))
    assert clean["values"] == pytest.approx([-0.04, -0.01, -0.05]) and clean["n"] == 3 and clean["seeds"] == [0, 7, 9]
    assert (clean["min"], clean["max"]) == (pytest.approx(-0.05), pytest.approx(-0.01))
    at_03 = vs["models"]["gradreg"]["accuracy_vs_epsilon"]["fgsm"][1]
    mean, low, high = _scipy_paired([w[1] for w in WHITE_BOX["gradreg"]], [w[1] for w in WHITE_BOX["normal"]])
    assert (at_03["mean"], at_03["ci_low"], at_03["ci_high"]) == (pytest.approx(mean), pytest.approx(low),
                                                                  pytest.approx(high))
    assert low > 0  # the paired interval shows the difference ...
    unpaired = [s["accuracy_vs_epsilon"]["fgsm"][n][n][1] for n in ("normal", "gradreg")]
    assert unpaired[0]["ci_high"] > unpaired[1]["ci_low"]  # ... that the two overlapping intervals do not


def test_a_metric_one_seed_did_not_measure_drops_that_seed_from_the_pair():
    per_seed = [{"normal": {"kendall_tau": 0.30, "top_k": 0.5}, "cam": {"kendall_tau": 0.10, "top_k": None}},
                {"normal": {"kendall_tau": 0.20, "top_k": None}, "cam": {"kendall_tau": 0.25, "top_k": 0.6}},
                {"normal": {"kendall_tau": 0.40, "top_k": 0.7}, "cam": {"kendall_tau": 0.20, "top_k": 0.4}}]
    vs = summarize_interpretability([0, 7, 9], per_seed, reference="normal")["vs_reference"]
    assert vs["reference"] == "normal" and list(vs["models"]) == ["cam"]
    tau = vs["models"]["cam"]["kendall_tau"]
    mean, low, high = _scipy_paired([0.10, 0.25, 0.20], [0.30, 0.20, 0.40])
    assert (tau["mean"], tau["ci_low"], tau["ci_high"], tau["n"]) == (pytest.approx(mean), pytest.approx(low),
                                                                      pytest.approx(high), 3)
    top = vs["models"]["cam"]["top_k"]  # seed 0: cam not measured; seed 7: normal not measured
    assert top["n"] == 1 and top["seeds"] == [9] and top["values"] == pytest.approx([-0.3])
    assert top["ci_low"] is None and top["ci_high"] is None  # one pair: no interval


def test_a_single_seed_gives_the_difference_without_an_interval():
    vs = summarize([0], [_evaluation(0)], reference="normal")["vs_reference"]["models"]["gradreg"]
    assert vs["clean_accuracy"]["mean"] == pytest.approx(-0.04) and vs["clean_accuracy"]["n"] == 1
    assert vs["clean_accuracy"]["ci_low"] is None and vs["accuracy_vs_epsilon"]["fgsm"][1]["ci_high"] is None


def test_without_a_reference_model_there_is_no_paired_section():
    per_seed = [_evaluation(i) for i in range(3)]
    assert reference_model(["fgsm_adv", "gradreg"]) is None and reference_model(["gradreg", "normal"]) == "normal"
    assert "vs_reference" not in summarize([0, 7, 9], per_seed, reference=None)
    interp = summarize_interpretability([0, 7], [{"a": {"kendall_tau": 0.1}}, {"a": {"kendall_tau": 0.2}}], None)
    assert "vs_reference" not in interp
    with pytest.raises(ValueError, match="reference model 'rater' is not one of the defenses"):
        summarize([0, 7, 9], per_seed, reference="rater")


def test_a_config_without_the_reference_model_writes_no_paired_section(tmp_path):
    import json
    cfg = {**SEEDED, "name": "no-reference", "training": {**SEEDED["training"], "seeds": [0, 7]},
           "defenses": [{"name": "plain", "kind": "normal"}, {"name": "fgsm_adv"}]}
    out = generate(from_dict(cfg), tmp_path / "set")
    seeds = json.loads((out / "metrics.json").read_text())["seeds"]
    assert "vs_reference" not in seeds and set(seeds["clean_accuracy"]) == {"plain", "fgsm_adv", "rater"}
    assert "paired difference" not in (out / "tables" / "seeds.md").read_text() and "vs_accuracy_matched" not in seeds
    assert not (out / "tables" / "seeds_vs_reference.csv").exists()
    assert not (out / "figures" / "seeds_vs_reference.png").exists()


def test_an_accuracy_matched_baseline_is_paired_with_the_model_it_is_matched_to():
    per_seed = [_evaluation(i) for i in range(3)]
    for i, m in enumerate(per_seed):  # "matched" is normal trained until it reaches gradreg's accuracy
        m["clean_accuracy"]["matched"] = [0.85, 0.80, 0.81][i]
        m["accuracy_vs_epsilon"]["fgsm"]["matched"] = {"matched": [[0.85, 0.2], [0.80, 0.1], [0.81, 0.3]][i]}
    s = summarize([0, 7, 9], per_seed, reference="normal", defenses=["normal", "gradreg", "matched"],
                  matched={"matched": "gradreg"})
    vs = s["vs_accuracy_matched"]
    assert vs["pairs"] == {"matched": "gradreg"} and list(vs["models"]) == ["matched"]
    mean, low, high = _scipy_paired([w[1] for w in WHITE_BOX["gradreg"]], [0.2, 0.1, 0.3])  # gradreg - matched
    at_03 = vs["models"]["matched"]["accuracy_vs_epsilon"]["fgsm"][1]
    assert (at_03["mean"], at_03["ci_low"], at_03["ci_high"]) == (pytest.approx(mean), pytest.approx(low),
                                                                  pytest.approx(high))
    assert list(s["vs_reference"]["models"]) == ["gradreg", "matched"]
    with pytest.raises(ValueError, match="accuracy-matched pairs name models that are not defenses: matched -> x"):
        summarize([0, 7, 9], per_seed, defenses=["normal", "gradreg", "matched"], matched={"matched": "x"})


def test_the_paired_tables_name_each_pair_once(tmp_path):
    per_seed = [_evaluation(i) for i in range(3)]
    for m in per_seed:
        m["clean_accuracy"]["matched"] = 0.8
        m["accuracy_vs_epsilon"]["fgsm"]["matched"] = {"matched": [0.8, 0.2]}
    s = summarize([0, 7, 9], per_seed, "normal", ["normal", "gradreg", "matched"],
                  {"matched": "gradreg", "gradreg": "normal"})  # the second pair is vs_reference's, reversed
    write_table(s, tmp_path / "seeds.md")
    text = (tmp_path / "seeds.md").read_text()
    rows = [line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ") and " − " in line]
    assert rows == ["model − reference", "gradreg − normal", "matched − normal", "gradreg − matched"]
    assert "| gradreg − normal | -0.033 [" in text
    import csv
    pairs = {(r["model"], r["reference"]) for r in csv.DictReader(open(tmp_path / "seeds_vs_reference.csv"))}
    assert pairs == {("gradreg", "normal"), ("matched", "normal"), ("gradreg", "matched")}
