"""precision = fp32 | bf16 | auto: autocast speeds attacks and training up, and never changes what is
recorded: flags, norms and predictions come from an fp32 pass on the final 8-bit image."""
import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from advlegit.generation import precision
from advlegit.generation.attacks import get_attack
from advlegit.generation.attacks.base import finish, perturbation_norms
from advlegit.generation.config import ConfigError, from_dict, validate
from advlegit.generation.defenses import build_defense, defense_params
from advlegit.generation.manifest import read_manifest, verify
from advlegit.generation.metrics import probabilities
from advlegit.generation.models import build_model
from advlegit.generation.pipeline import generate
from advlegit.generation.stimuli import run_quantized, stimulus_norms
from advlegit.generation.train import ModelSpec, fit

CPU = torch.device("cpu")


def test_resolve_names_and_rejects_unknown():
    assert precision.resolve("fp32", CPU) == "fp32"
    assert precision.resolve("bf16", CPU) == "bf16"
    assert precision.resolve("auto", CPU) == ("bf16" if precision.bf16_fast(CPU) else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve("fp16", CPU)


def test_config_rejects_an_unknown_precision_and_hashes_the_known_ones():
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto"):
        validate(from_dict({"precision": "half"}))
    assert from_dict({"precision": "bf16"}).hash() != from_dict({}).hash()


def test_bf16_changes_the_checkpoint_key_and_fp32_keeps_the_old_one():
    spec = ModelSpec("normal", "defended", "normal", {}, "ross_cnn", 0.25, 0.5, 10, 32, 1e-3, 0, "train", {})
    bf16 = dataclasses.replace(spec, precision="bf16")
    assert bf16.key() != spec.key()
    # the key an fp32 spec had before precision existed: every cached checkpoint stays valid
    from advlegit.generation.config import sha256_json
    from advlegit.generation.train import CHECKPOINT_FORMAT
    old = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("load", "precision", "match")}
    assert spec.key() == sha256_json({"format": CHECKPOINT_FORMAT, **old, "name": None})


def test_recorded_predictions_are_an_fp32_pass_even_inside_bf16(normal_model, batch):
    x, _ = batch
    reference = probabilities(normal_model, x)
    with precision.attacking("bf16", CPU, normal_model):
        recorded = probabilities(normal_model, x)
        in_bf16 = F.softmax(normal_model(x), dim=1)  # what an unguarded pass would have written
    assert recorded.dtype == torch.float32
    assert torch.equal(recorded, reference)
    assert not torch.equal(in_bf16, reference)  # autocast really was on: the guard is what made them equal


@pytest.mark.parametrize("attack", ["pgd_linf", "deepfool"])
def test_flags_and_norms_of_bf16_stimuli_are_what_fp32_verification_gives(normal_model, batch, attack):
    x, y = batch
    x = (x[:16] * 255).round() / 255
    y = y[:16]
    target = (y + 1) % 10
    params = {"pgd_linf": {"epsilon": 0.2, "steps": 5}, "deepfool": {"steps": 5}}[attack]
    with precision.attacking("bf16", CPU, normal_model):
        made = run_quantized(get_attack(attack), normal_model, x, y, target, params)
        norms_inside = stimulus_norms(x, made.images)
    checked = finish(normal_model, x, made.images, y, target)  # fp32, no autocast anywhere
    assert torch.equal(made.success, checked.success)
    for k in ("l2", "linf", "l0"):
        assert torch.equal(made.norms[k], checked.norms[k])
        assert made.norms[k].dtype == torch.float32
    assert norms_inside == stimulus_norms(x, made.images)
    assert perturbation_norms(x.double(), made.images.double())["l2"].dtype == torch.float64


def test_bf16_training_with_double_backprop_keeps_input_gradients_fp32(mnist):
    x, y = mnist["train"]
    defense = build_defense("gradreg", defense_params("gradreg", {"lambda": 10.0}))
    seen = []

    def loss(model, xb, yb, step):
        xb = xb.detach().requires_grad_(True)
        logits = model(xb)
        (g,) = torch.autograd.grad(F.cross_entropy(logits, yb), xb, create_graph=True)
        seen.append((logits.dtype, g.dtype, torch.is_autocast_enabled('cpu')))
        return defense.loss(model, xb, yb, step)

    torch.manual_seed(0)
    model = build_model("ross_cnn", width=0.25)
    fit(model, loss, x, y, steps=3, batch_size=16, lr=1e-3, seed=0, desc="bf16", precision="bf16")
    assert seen == [(torch.float32, torch.float32, True)] * 3
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_a_bf16_stimulus_set_records_fp32_predictions_and_verifies(tmp_path):
    cfg = from_dict({
        "name": "bf16", "precision": "bf16",
        "data": {"n_train": 200, "n_rater": 100, "n_test": 60},
        "model": {"width": 0.25}, "training": {"steps": 3, "batch_size": 32},
        "defenses": [{"name": "normal"}, {"name": "gradreg", "kind": "gradreg", "lambda": 10.0}],
        "evaluation": {"epsilons": [0.0, 0.3], "n_images": 8, "pgd_steps": 2},
        "stimuli": {"per_class": 1, "targets": "next", "attack": "pgd_linf", "attack_params": {"steps": 2},
                    "epsilons": [0.2], "require_correct": False},
    })
    out = generate(cfg, tmp_path / "set")
    verify(out)
    manifest = read_manifest(out)
    assert manifest["software"]["precision"] == "bf16"
    # recompute every recorded prediction of the first model in fp32 from the 8-bit PNGs
    from advlegit.generation.render import read_png
    from advlegit.generation.train import new_model
    model_entry = manifest["models"][0]
    spec_key = model_entry["cache_key"]
    from advlegit.generation.train import cache_dir
    spec = json.loads((cache_dir() / "models" / f"{spec_key}.json").read_text())
    assert spec["precision"] == "bf16"
    net = new_model(ModelSpec(**spec), (1, 28, 28), 10)
    net.load_state_dict(torch.load(cache_dir() / "models" / f"{spec_key}.pt", weights_only=True))
    net.eval()
    stimuli = manifest["stimuli"]
    images = torch.stack([torch.from_numpy(read_png(out / s["image"])).reshape(1, 28, 28)
                          for s in stimuli])
    probs = probabilities(net, images)
    for s, p in zip(stimuli, probs, strict=True):
        assert s["predictions"][model_entry["name"]]["label"] == int(p.argmax())
        assert s["predictions"][model_entry["name"]]["probs"] == [round(float(v), 6) for v in p]


def test_deepfool_in_bf16_stops_only_where_fp32_agrees_it_crossed(normal_model, batch):
    x, y = batch
    x, y = x[:24], y[:24]
    fp32 = get_attack("deepfool")(normal_model, x, y, steps=20)
    with precision.attacking("bf16", CPU, normal_model):
        bf16 = get_attack("deepfool")(normal_model, x, y, steps=20)
    assert fp32.success.all()
    assert bf16.success.all()  # before the fp32 stop rule, bf16 stopped short on some images
