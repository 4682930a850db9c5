"""End to end through the generation package: config -> stimulus set -> verify, on real digits."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from advlegit import main
from advlegit.generation.config import from_dict
from advlegit.generation.manifest import manifest_sha256, verify
from advlegit.generation.pipeline import OutputExistsError, generate
from advlegit.generation.render import read_png

MICRO = {
    "name": "micro",
    "data": {"n_train": 300, "n_rater": 200, "n_test": 100},
    "model": {"width": 0.25},
    "training": {"steps": 4, "batch_size": 32},
    "defenses": [
        {"name": "normal"},
        {"name": "distilled", "kind": "distillation", "temperature": 50.0},
        {"name": "fgsm_adv"},
        {"name": "gradreg_y", "kind": "gradreg", "lambda": 110.0},
        {"name": "gradreg_uniform", "kind": "gradreg", "variant": "uniform", "lambda": 2.0},
        {"name": "gradreg_adv"},
        {"name": "pgd_adv", "steps": 2, "step_size": 0.15},
    ],
    "raters": {"count": 2},
    "evaluation": {"epsilons": [0.0, 0.3], "n_images": 16, "pgd_steps": 2},
    "stimuli": {"per_class": 1, "targets": "next", "attack": "tgsm_iterative",
                "attack_params": {"steps": 3}, "design": "minimal", "max_budget": 0.5, "resolution": 0.05,
                "require_correct": False},
}

MANIFEST_STIMULUS_KEYS = {"id", "kind", "twin", "image", "sha256", "group", "source_id", "source_index",
                          "true_label", "target_label", "defense", "design", "attack", "attack_params", "budget",
                          "seed", "norms", "success", "predictions"}


@pytest.fixture(scope="module")
def stimulus_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "micro"
    generate(from_dict(MICRO), out)
    return out


def test_manifest_describes_every_stimulus(stimulus_set):
    m = verify(stimulus_set)
    assert m["format_version"] == 2 and m["config_hash"] == from_dict(MICRO).hash()
    assert m["stimulus_design"]["design"] == "minimal" and "confounded" in m["stimulus_design"]["estimand"]
    assert {s["kind"] for s in m["sources"]} == {"clean"}
    names = [x["name"] for x in m["models"]]
    assert names == [d["name"] for d in MICRO["defenses"]] + ["rater1", "rater2"]
    assert {x["role"] for x in m["models"] if x["name"].startswith("rater")} == {"rater"}
    assert all(len(x["checkpoint_sha256"]) == 64 for x in m["models"])
    assert len(m["sources"]) == 10 and sorted(s["true_label"] for s in m["sources"]) == list(range(10))
    assert len(m["stimuli"]) == 10 * 7  # matched: every (source, target) against every defense
    for s in m["stimuli"]:
        assert MANIFEST_STIMULUS_KEYS <= set(s)
        assert s["target_label"] == (s["true_label"] + 1) % 10
        assert set(s["predictions"]) == set(names)
        assert s["success"] == (s["predictions"][s["defense"]]["label"] == s["target_label"])
        assert (s["kind"], s["twin"], s["design"]) == ("adversarial", None, "minimal")
        assert s["attack_params"]["epsilon"] == s["budget"] and s["norms"]["linf"] <= s["budget"] + 1e-6
        assert s["attack_params"]["step_size"] == pytest.approx(2.5 * s["budget"] / 3)
        assert s["success"] or s["budget"] == 0.5
    groups = {}
    for s in m["stimuli"]:
        groups.setdefault(s["group"], set()).add(s["defense"])
    assert all(len(v) == 7 for v in groups.values())


def test_pngs_are_lossless_and_unscaled(stimulus_set):
    m = json.loads((stimulus_set / "manifest.json").read_text())
    s = m["stimuli"][0]
    img = read_png(stimulus_set / s["image"])
    assert img.shape == (28, 28)
    src = next(x for x in m["sources"] if x["id"] == s["source_id"])
    clean = read_png(stimulus_set / src["image"])
    delta = img - clean
    assert abs(np.abs(delta).max() - s["norms"]["linf"]) < 1e-5
    assert abs(np.sqrt((delta ** 2).sum()) - s["norms"]["l2"]) < 1e-3
    for fig in ["accuracy_vs_epsilon_fgsm.png", "transfer_fgsm.png", "grid_normal.png", "matched_stimuli.png"]:
        assert (stimulus_set / "figures" / fig).stat().st_size > 1000
    metrics = json.loads((stimulus_set / "metrics.json").read_text())
    assert len(metrics["transfer_matrix"]["fgsm"]["accuracy"]) == 9


def _copy(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return dst


def test_verify_catches_a_flipped_byte(stimulus_set, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["verify-stimuli", str(stimulus_set)])
    assert ok.exit_code == 0, ok.output
    assert manifest_sha256(stimulus_set) in ok.output
    bad = _copy(stimulus_set, tmp_path / "flipped")
    target = next((bad / "images").glob("stim-*.png"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    res = runner.invoke(main, ["verify-stimuli", str(bad)])
    assert res.exit_code == 1 and "altered file images/" + target.name in res.output


@pytest.mark.parametrize("damage", ["delete", "add", "manifest"])
def test_verify_catches_missing_added_and_edited(stimulus_set, tmp_path, damage):
    bad = _copy(stimulus_set, tmp_path / damage)
    if damage == "delete":
        (bad / "metrics.json").unlink()
    elif damage == "add":
        (bad / "images" / "extra.png").write_bytes(b"x")
    else:
        m = json.loads((bad / "manifest.json").read_text())
        m["stimuli"][0]["sha256"] = "0" * 64
        (bad / "manifest.json").write_text(json.dumps(m))
    res = CliRunner().invoke(main, ["verify-stimuli", str(bad)])
    assert res.exit_code == 1


def test_second_run_reuses_checkpoints_and_existing_output_is_protected(stimulus_set, tmp_path):
    from advlegit.generation.train import cache_dir

    cfg = from_dict(MICRO)
    manifest = stimulus_set / "manifest.json"
    before = manifest.stat().st_mtime_ns
    generate(cfg, stimulus_set)  # same config, same folder: nothing to do
    assert manifest.stat().st_mtime_ns == before

    checkpoints = {p: p.stat().st_mtime_ns for p in (cache_dir() / "models").glob("*.pt")}
    evaluations = {p: p.stat().st_mtime_ns for p in (cache_dir() / "evaluation").glob("*.json")}
    assert len(checkpoints) >= 9 and evaluations
    generate(cfg, tmp_path / "again")  # same config, new folder: every checkpoint reused, none written
    assert {p: p.stat().st_mtime_ns for p in (cache_dir() / "models").glob("*.pt")} == checkpoints
    assert {p: p.stat().st_mtime_ns for p in (cache_dir() / "evaluation").glob("*.json")} == evaluations
    a = json.loads(manifest.read_text())
    b = json.loads((tmp_path / "again" / "manifest.json").read_text())
    assert [m["checkpoint_sha256"] for m in a["models"]] == [m["checkpoint_sha256"] for m in b["models"]]
    assert [s["sha256"] for s in a["stimuli"]] == [s["sha256"] for s in b["stimuli"]]  # deterministic
    other = from_dict({**MICRO, "name": "other"})
    with pytest.raises(OutputExistsError):
        generate(other, stimulus_set)


def test_cli_reports_config_errors_and_changes_nothing(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[training]\nsteps = "ten"\n')
    res = CliRunner().invoke(main, ["generate", str(cfg), "-o", str(tmp_path / "out")])
    assert res.exit_code != 0 and "training.steps" in res.output
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(main, ["generate", str(cfg), "-o", str(tmp_path / "out"), "--device", "cuda:7"])
    assert res.exit_code != 0
