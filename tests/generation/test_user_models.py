"""Your own model (issue 15 item 3): a [[defenses]] entry that loads a file instead of training.

The files are written here in the layouts people have: RobustBench's (a dict with "state_dict",
DataParallel's "module." prefixes) for a factory of their own, a plain state_dict for one of our
architectures, and TorchScript.
"""
from __future__ import annotations

import hashlib
import textwrap

import pytest
import torch
from click.testing import CliRunner

from advlegit import main
from advlegit.generation.config import ConfigError, from_dict
from advlegit.generation.manifest import verify
from advlegit.generation.models import build_model
from advlegit.generation.pipeline import generate
from advlegit.generation.user_models import ModelFileError, load_model

FACTORY_SOURCE = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self, hidden=8, classes=10):
            super().__init__()
            self.conv = nn.Conv2d(1, hidden, 3, padding=1)
            self.fc = nn.Linear(hidden * 7 * 7, classes)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 4)
            return self.fc(x.flatten(1))

    def build(hidden=8):
        return TinyNet(hidden)
''')
MEAN, STD = [0.1307], [0.3081]


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """A module of the person's own, importable as `mynets`."""
    (tmp_path / "mynets.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import mynets
    return importlib.reload(mynets)


def robustbench_file(path, model) -> None:
    """RobustBench's checkpoint layout: weights under "state_dict", saved from nn.DataParallel."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 99,
                "best_acc": 0.5}, path)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_robustbench_layout_model_is_loaded_attacked_and_its_stimuli_verify(factory, tmp_path):
    torch.manual_seed(0)
    mine = factory.build(hidden=6)
    weights = tmp_path / "mine.pt"
    robustbench_file(weights, mine)
    cfg = from_dict({
        "name": "own-model",
        "data": {"n_train": 200, "n_rater": 100, "n_test": 100},
        "model": {"width": 0.25},
        "training": {"steps": 3, "batch_size": 16},
        "defenses": [{"name": "normal"},
                     {"name": "mine", "load": str(weights), "factory": "mynets:build",
                      "factory_args": {"hidden": 6}, "mean": MEAN, "std": STD}],
        "raters": {"count": 0},
        "evaluation": {"epsilons": [0.0, 0.3], "n_images": 16, "pgd_steps": 2},
        "stimuli": {"per_class": 1, "attack": "pgd_linf", "attack_params": {"steps": 3},
                    "epsilons": [0.3], "require_correct": False},
    })
    out = generate(cfg, tmp_path / "set")
    result = CliRunner().invoke(main, ["verify-stimuli", str(out)])
    assert result.exit_code == 0, result.output

    m = verify(out)
    entry = next(x for x in m["models"] if x["name"] == "mine")
    assert entry["defense"] == "loaded" and entry["checkpoint_sha256"] == sha256(weights)
    assert entry["loaded_from"]["format"] == "state_dict"
    assert entry["loaded_from"]["factory"] == "mynets:build" and entry["loaded_from"]["mean"] == MEAN
    attacked = [s for s in m["stimuli"] if s["defense"] == "mine"]
    assert len(attacked) == 10 and all(s["norms"]["linf"] > 0 for s in attacked)
    assert all({"normal", "mine"} <= set(s["predictions"]) for s in m["stimuli"])

    # the manifest's predictions are those of the model as loaded: normalization inside it
    mine.eval()
    from advlegit.generation.render import read_png
    s = attacked[0]
    img = torch.from_numpy(read_png(out / s["image"])).float().view(1, 1, 28, 28)
    assert mine((img - MEAN[0]) / STD[0]).argmax().item() == s["predictions"]["mine"]["label"]


def test_torchscript_and_our_architectures_load(factory, tmp_path):
    torch.manual_seed(0)
    net = factory.build().eval()
    scripted = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(net), str(scripted))
    ts = load_model({"load": str(scripted), "mean": MEAN, "std": STD}, (1, 28, 28), 10, torch.device("cpu"))
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(ts(x), net((x - MEAN[0]) / STD[0]))

    ours = build_model("smallnet").eval()
    plain = tmp_path / "smallnet.pt"
    torch.save({"model_state_dict": ours.state_dict()}, plain)
    loaded = load_model({"load": str(plain), "architecture": "smallnet"}, (1, 28, 28), 10, torch.device("cpu"))
    torch.testing.assert_close(loaded(x), ours(x))


def test_loaded_gap_head_model_keeps_its_cam(tmp_path):
    from advlegit.generation.models import has_gap_head
    ours = build_model("pool_gap").eval()
    path = tmp_path / "pool.pt"
    torch.save(ours.state_dict(), path)
    loaded = load_model({"load": str(path), "architecture": "pool_gap", "mean": MEAN, "std": STD},
                        (1, 28, 28), 10, torch.device("cpu"))
    assert has_gap_head(loaded)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(loaded.linear(loaded.feature_maps(x).mean(dim=(2, 3))), loaded(x))


def _load(path, **settings):
    return load_model({"load": str(path), **settings}, (1, 28, 28), 10, torch.device("cpu"))


def test_bad_files_are_refused_with_the_file_named(factory, tmp_path):
    missing = tmp_path / "nothere.pt"
    with pytest.raises(ModelFileError, match=r"nothere\.pt: model file not found"):
        _load(missing, factory="mynets:build")

    wrong_keys = tmp_path / "wrong_keys.pt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(3)}}, wrong_keys)
    with pytest.raises(ModelFileError, match=r"wrong_keys\.pt: the state_dict does not fit the model: "
                                             r"missing conv\.bias.*unexpected encoder\.weight"):
        _load(wrong_keys, factory="mynets:build")

    mismatch = tmp_path / "mismatch.pt"
    torch.save(factory.build(hidden=4).state_dict(), mismatch)
    with pytest.raises(ModelFileError, match=r"mismatch\.pt: .*shape mismatch conv\.bias \(4,\) vs \(8,\)"):
        _load(mismatch, factory="mynets:build")

    not_weights = tmp_path / "not_weights.pt"
    torch.save({"epoch": 3, "note": "no tensors"}, not_weights)
    with pytest.raises(ModelFileError, match=r"not_weights\.pt: expected a state_dict"):
        _load(not_weights, factory="mynets:build")

    pickled_object = tmp_path / "pickled.pt"
    torch.save(factory.build(), pickled_object)  # a whole pickled module: refused, never unpickled
    with pytest.raises(ModelFileError, match=r"pickled\.pt: not a state_dict that torch.load can read safely"):
        _load(pickled_object, factory="mynets:build")

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes\.txt: not a TorchScript file"):
        _load(text)
    with pytest.raises(ModelFileError, match=r"pickled\.pt: not a TorchScript file"):
        _load(pickled_object)

    with pytest.raises(ModelFileError, match=r"mismatch\.pt: factory 'mynets:nothing' cannot be imported"):
        _load(mismatch, factory="mynets:nothing")

    five = tmp_path / "five.pt"
    torch.jit.save(torch.jit.script(factory.TinyNet(classes=5)), str(five))
    with pytest.raises(ModelFileError, match=r"five\.pt: the model returns \(2, 5\).*10 classes"):
        _load(five)

    ok = tmp_path / "ok.pt"
    torch.save(factory.build().state_dict(), ok)
    with pytest.raises(ModelFileError, match=r"ok\.pt: mean/std have 3 values but the images have 1"):
        _load(ok, factory="mynets:build", mean=[0.5] * 3, std=[0.5] * 3)


def test_a_bad_model_file_stops_generate_before_any_training(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ADVLEGIT_CACHE_DIR", str(cache))
    config = tmp_path / "c.toml"
    config.write_text('[[defenses]]\nname = "normal"\n'
                      f'[[defenses]]\nname = "mine"\nload = "{tmp_path / "absent.pt"}"\narchitecture = "ross_cnn"\n'
                      '[data]\nn_train = 100\nn_rater = 50\nn_test = 50\n[training]\nsteps = 2\n')
    result = CliRunner().invoke(main, ["generate", str(config), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1 and "absent.pt: model file not found" in result.output
    assert not (tmp_path / "out").exists()
    assert not list(cache.rglob("*.pt")), "a model was trained before the bad file was found"


@pytest.mark.parametrize("entry,message", [
    ({"load": "m.pt", "kind": "normal"}, 'its kind is "loaded"'),
    ({"kind": "loaded"}, "load must name the model file"),
    ({"load": "m.pt", "lambda": 3.0}, "unknown field 'lambda' for a loaded model"),
    ({"load": "m.pt", "train_steps": 5}, "a loaded model is not trained"),
    ({"load": "m.pt", "factory": "x:y", "architecture": "ross_cnn"}, "not both"),
    ({"load": "m.pt", "factory": "nocolon"}, 'factory must be "module:function"'),
    ({"load": "m.pt", "factory_args": {"a": 1}}, "factory_args needs factory"),
    ({"load": "m.pt", "mean": [0.5], "std": []}, "one value per channel"),
    ({"load": "m.pt", "mean": [0.5], "std": [0.0]}, "std must be positive"),
    ({"load": "m.pt", "architecture": "vgg"}, "architecture must be one of"),
])
def test_loaded_entries_are_checked_before_anything_runs(entry, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"defenses": [{"name": "mine", **entry}]})
