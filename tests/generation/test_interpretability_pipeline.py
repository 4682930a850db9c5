"""`advlegit generate` with an [interpretability] table: figures, tables, metrics.json, saliency
exported into the stimulus set and verified."""
import csv
import json

import pytest

from advlegit.generation.config import from_dict
from advlegit.generation.manifest import VerificationError, verify
from advlegit.generation.pipeline import generate

MICRO = {
    "name": "micro-interp",
    "data": {"n_train": 300, "n_rater": 100, "n_test": 60},
    "model": {"width": 0.25},
    "training": {"steps": 4, "batch_size": 32},
    "defenses": [{"name": "normal"},
                 {"name": "gradreg", "lambda": 1.0},
                 {"name": "cam", "kind": "normal", "architecture": "gap_cnn"}],
    "raters": {"count": 0},
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 8},
    "stimuli": {"per_class": 1, "attack": "tgsm_iterative", "attack_params": {"steps": 2},
                "epsilons": [0.3], "require_correct": False},
    "interpretability": {"n_images": 6, "grid_images": 4, "ig_steps": 4, "pgd_steps": 2,
                         "robustness_attacks": ["deepfool"], "attack_steps": 2, "attack_restarts": 1,
                         "attack_ig_steps": 4,
                         "attack_k": 50, "top_k": 20, "export_saliency": ["integrated_gradients", "cam"],
                         "cam_attack_steps": 2, "cam_search_rounds": 3},
}


@pytest.fixture(scope="module")
def interp_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "interp"
    generate(from_dict(MICRO), out)
    return out


def test_interpretability_results_in_metrics_tables_and_figures(interp_set):
    metrics = json.loads((interp_set / "metrics.json").read_text())["interpretability"]
    assert set(metrics["models"]) == {"normal", "gradreg", "cam"}
    for name, r in metrics["models"].items():
        assert 0 <= r["natural_accuracy"] <= 1 and 0 <= r["pgd_accuracy"] <= 1
        assert r["alignment_mean"] > 0 and len(r["per_image"]["alignment"]) == 6
        attack = r["attribution_attack"]
        # only correctly classified digits are attacked (Chen et al.); the others are counted apart
        assert attack["n_attacked"] + attack["n_misclassified_skipped"] == 6
        assert attack["label_kept"] == attack["n_attacked"]
        if attack["n_attacked"]:
            assert 0 <= attack["top_k_intersection"] <= 1 and -1 <= attack["kendall_tau"] <= 1
        assert ("cam_discrepancy" in r) == (name == "cam") == ("cam_min_epsilon" in r)
    rows = list(csv.DictReader(open(interp_set / "tables" / "interpretability.csv")))
    assert [r["model"] for r in rows] == ["normal", "gradreg", "cam"]
    assert rows[2]["architecture"] == "gap_cnn" and rows[2]["cam_discrepancy_two_class"]
    assert "Kendall" in (interp_set / "tables" / "interpretability.md").read_text()
    low = metrics["models"]["cam"]["cam_min_epsilon"]
    assert low["attack"] == "targeted_min_epsilon" and low["n_images"] == 6 and low["search_rounds"] == 3
    assert rows[2]["cam_min_eps_success"] == f"{low['n_success']}/6"
    for fig in ["saliency_normal.png", "saliency_cam.png", "alignment_vs_robustness.png",
                "cam_discrepancy_vs_margin.png"]:
        assert (interp_set / "figures" / fig).stat().st_size > 2000


def test_saliency_maps_are_exported_and_verified(interp_set):
    m = verify(interp_set)
    models = {x["name"]: x for x in m["models"]}
    assert models["cam"]["architecture"] == "gap_cnn" and models["normal"]["architecture"] == "ross_cnn"
    for s in m["stimuli"]:
        methods = set(s["saliency"])
        assert methods == ({"integrated_gradients", "cam"} if s["defense"] == "cam" else {"integrated_gradients"})
        assert (interp_set / s["saliency"]["integrated_gradients"]["image"]).is_file()
    victim = m["stimuli"][0]["saliency"]["integrated_gradients"]["image"]
    (interp_set / victim).write_bytes(b"not the map")
    with pytest.raises(VerificationError, match="altered file"):
        verify(interp_set)


def test_interpretability_is_off_without_its_table():
    cfg = from_dict({k: v for k, v in MICRO.items() if k != "interpretability"})
    assert not cfg.interpretability.enabled
