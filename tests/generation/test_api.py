"""The generation Python API (issue 19 item 2): load a set, a model it names, re-run its recorded attack."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from advlegit.generation import GenerationError, load_model, load_stimulus_set, rerun_attack
from advlegit.generation.config import from_dict
from advlegit.generation.pipeline import generate
from advlegit.generation.render import read_png

TINY = {
    "name": "api-tiny",
    "data": {"n_train": 300, "n_rater": 100, "n_test": 100},
    "model": {"width": 0.25},
    "training": {"steps": 30, "batch_size": 32, "lr": 0.003},
    "defenses": [{"name": "normal"}, {"name": "gradreg_y", "kind": "gradreg", "lambda": 10.0}],
    "evaluation": {"attacks": ["fgsm"], "epsilons": [0.0, 0.3], "n_images": 16},
    "stimuli": {"per_class": 1, "targets": "next", "attack": "tgsm_iterative", "attack_params": {"steps": 3},
                "design": "fixed_budget", "epsilons": [0.05, 0.2], "require_correct": False},
}


def _config(design: str) -> dict:
    cfg = copy.deepcopy(TINY)
    if design != "fixed_budget":
        stim = cfg["stimuli"]
        del stim["epsilons"]
        stim.update(design=design, max_budget=0.5, resolution=0.05)
        if design == "matched_norm":
            stim["controls"] = ["flip"]
    return cfg


@pytest.fixture(scope="module", params=["fixed_budget", "minimal", "matched_norm"])
def stimulus_set(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / request.param
    generate(from_dict(_config(request.param)), out)
    return load_stimulus_set(out)


def test_rerunning_the_recorded_attack_reproduces_every_success_flag(stimulus_set):
    ids = stimulus_set.ids()
    result = rerun_attack(stimulus_set, ids)
    assert result.ids == ids
    assert result.success.tolist() == result.recorded_success.tolist()
    assert result.true_labels.tolist() == [stimulus_set.entry(i)["true_label"] for i in ids]
    assert result.target_labels.tolist() == [stimulus_set.entry(i)["target_label"] for i in ids]
    assert result.same_image.all()  # the images themselves: exactly the PNGs
    for row, i in zip(result.records(), ids, strict=True):
        recorded = stimulus_set.entry(i)["norms"]
        if row["same_image"]:
            assert row["norms"]["linf"] == pytest.approx(recorded["linf"], abs=1e-6)


def test_a_subset_in_another_order_gives_the_same_flags(stimulus_set):
    ids = stimulus_set.ids()[::-3]
    result = rerun_attack(stimulus_set, ids)
    assert result.success.tolist() == [stimulus_set.entry(i)["success"] for i in ids]


def test_images_are_the_pngs_and_the_models_predict_what_the_manifest_says(stimulus_set):
    ids = stimulus_set.ids(kind=None)[:6] + [stimulus_set.sources[0]["id"]]
    x = stimulus_set.images(ids)
    assert x.dtype == np.float32 and x.shape == (len(ids), 1, 28, 28)
    assert np.array_equal(x[0, 0], read_png(stimulus_set.folder / stimulus_set.entry(ids[0])["image"]))
    for name in ("normal", "gradreg_y", "rater"):
        model = load_model(stimulus_set, name)
        with torch.no_grad():
            labels = model(torch.from_numpy(x)).argmax(1).tolist()
        assert labels == [stimulus_set.entry(i)["predictions"][name]["label"] for i in ids]


def test_controls_unknown_ids_and_foreign_weights_are_refused(stimulus_set, tmp_path):
    with pytest.raises(GenerationError, match="no stimulus or source with id 'stim-nope'"):
        rerun_attack(stimulus_set, ["stim-nope"])
    controls = stimulus_set.ids(kind="control_flip")
    if controls:
        with pytest.raises(GenerationError, match="re-run its twin"):
            rerun_attack(stimulus_set, controls[:1])
    with pytest.raises(GenerationError, match="no model named 'robust'"):
        load_model(stimulus_set, "robust")
    other = tmp_path / "other.pt"
    torch.save({"w": torch.zeros(1)}, other)
    with pytest.raises(GenerationError, match="sha256 differs"):
        load_model(stimulus_set, "normal", checkpoint=other)


def test_an_altered_set_is_refused(stimulus_set, tmp_path):
    import shutil

    copy_ = tmp_path / "set"
    shutil.copytree(stimulus_set.folder, copy_)
    png = copy_ / stimulus_set.stimuli[0]["image"]
    png.write_bytes(png.read_bytes() + b"\0")
    with pytest.raises(GenerationError, match="not a valid stimulus set"):
        load_stimulus_set(copy_)
    assert load_stimulus_set(copy_, check=False).verified is False
    with pytest.raises(GenerationError, match="not a valid stimulus set"):
        load_stimulus_set(tmp_path / "nothing-here")
