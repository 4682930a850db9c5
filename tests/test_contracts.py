"""Contract 1 across packages: a stimulus set written by `generation` is read by `study_app`
(which never imports generation), and tampering is refused on both sides."""
from __future__ import annotations

import pytest

from generation.config import from_dict
from generation.pipeline import generate
from study_app.manifest import StimulusSetError, load_stimulus_set

TINY = {
    "name": "contract",
    "data": {"n_train": 200, "n_rater": 100, "n_test": 100},
    "model": {"width": 0.25},
    "training": {"steps": 2, "batch_size": 16},
    "defenses": [{"name": "normal"}, {"name": "gradreg_y", "kind": "gradreg"}],
    "evaluation": {"epsilons": [0.0, 0.3], "n_images": 8, "pgd_steps": 1},
    "stimuli": {"per_class": 1, "attack": "tgsm", "until_success": False, "require_correct": False},
}


@pytest.fixture(scope="module")
def stimulus_set(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return generate(from_dict(TINY), tmp_path_factory.mktemp("sets") / "contract")


def test_study_app_reads_what_generation_writes(stimulus_set):
    loaded = load_stimulus_set(stimulus_set)
    assert loaded.defended == ["normal", "gradreg_y"]
    assert loaded.raters == ["rater"]
    assert len(loaded.manifest["stimuli"]) == 20 and len(loaded.manifest["sources"]) == 10
    assert set(loaded.images) >= {s["id"] for s in loaded.manifest["stimuli"]}


def test_study_app_refuses_a_tampered_set(stimulus_set, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(stimulus_set, bad)
    png = next((bad / "images").glob("stim-*.png"))
    data = bytearray(png.read_bytes())
    data[-20] ^= 0xFF
    png.write_bytes(bytes(data))
    with pytest.raises(StimulusSetError):
        load_stimulus_set(bad)
