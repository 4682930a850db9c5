"""The defenses of Etmann et al., Chen et al. and Boopathy et al.: their regularizers train the
weights (a detached attribution would fail these tests), reduce to their base objectives when the
coefficient is 0, validate their parameters, and train."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from advlegit.generation.defenses import DEFENSES, TrainContext, build_defense, defense_params
from advlegit.generation.defenses.attribution_terms import cam_discrepancy, ig_l1
from advlegit.generation.defenses.inner_max import delayed_ramp
from advlegit.generation.models import GapCNN, RossCNN
from advlegit.generation.saliency import cam

NEW = ["etmann_gradreg", "ig_norm", "ig_sum_norm", "int", "int2"]
FAST = {  # small inner loops: the tests check wiring and gradients, not robustness
    "etmann_gradreg": {},
    "ig_norm": {"steps": 2, "step_size": 0.1, "ig_steps": 3, "inner_ig_steps": 2},
    "ig_sum_norm": {"steps": 2, "step_size": 0.1, "ig_steps": 3, "inner_ig_steps": 2},
    "int": {"steps": 2, "step_size": 0.1},
    "int2": {"steps": 2, "step_size": 0.1},
}
COEFFICIENT = {
    "etmann_gradreg": "lambda_",
    "ig_norm": "lambda_",
    "ig_sum_norm": "beta",
    "int": "gamma",
    "int2": "gamma",
}


def _model(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind in ("int", "int2"):
        return GapCNN(width=0.25)
    return RossCNN(width=0.25, dropout=0.0)


def _defense(kind: str, total_steps: int = 0, **overrides):
    defense = build_defense(kind, defense_params(kind, {**FAST[kind], **overrides}))
    defense.prepare(TrainContext(train_model=lambda fn, s: None, total_steps=total_steps))
    return defense


@pytest.fixture(scope="module")
def data(mnist):
    x, y = mnist["train"]
    return x[:12], y[:12].long()


def _weight_grads(loss: torch.Tensor, model: torch.nn.Module) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(model.parameters(), grads, strict=True)]


def _base_loss(kind: str, defense, model, x, x_adv, y) -> torch.Tensor:
    """The objective without its regularizer: CE at x (CE at x' for IG-SUM-NORM)."""
    return F.cross_entropy(model(x_adv if kind == "ig_sum_norm" else x), y)


@pytest.mark.parametrize("kind", NEW)
def test_the_regularizer_trains_the_weights_and_vanishes_at_zero(kind, data):
    x, y = data
    model = _model(kind)
    defense = _defense(kind, **({"lambda_": 1000.0} if kind == "etmann_gradreg" else {}))
    off = _defense(kind, **{COEFFICIENT[kind]: 0.0})
    if kind == "etmann_gradreg":
        x_adv = x
        loss, loss_off = defense.loss(model, x, y, 0), off.loss(model, x, y, 0)
    else:
        x_adv = defense.attack(model, x, y, step=0)
        assert (x_adv - x).abs().max() > 0.05
        loss, loss_off = defense.loss_at(model, x, x_adv, y), off.loss_at(model, x, x_adv, y)
    base = _base_loss(kind, defense, model, x, x_adv, y)
    assert torch.isfinite(loss) and loss > base
    torch.testing.assert_close(loss_off, base)
    with_reg, without = _weight_grads(loss, model), _weight_grads(base, model)
    gap = sum((a - b).abs().sum() for a, b in zip(with_reg, without, strict=True))
    assert gap > 1e-6 * sum(b.abs().sum() for b in without), f"{kind}: the regularizer moves no weight"
    for a, b in zip(_weight_grads(loss_off, model), without, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("kind", ["ig_norm", "ig_sum_norm", "int"])
def test_the_inner_maximization_raises_its_objective(kind, data):
    """PGD beats its own random start (same seed, same box) on the quantity it maximizes."""
    x, y = data
    model = _model(kind).eval()
    defense = _defense(kind, steps=4, step_size=0.1)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    start = (x + (2 * noise - 1) * 0.3).clamp(0, 1)
    objective = {
        "ig_norm": lambda z: ig_l1(model, x, z, y, defense.params.inner_ig_steps).sum(),
        "ig_sum_norm": lambda z: defense.objective(model, x, z, y, defense.params.inner_ig_steps).sum(),
        "int": lambda z: cam_discrepancy(model, x, z, y).sum(),
    }[kind]
    found = defense.attack(model, x, y, step=0)
    assert (found - x).abs().max() <= 0.3 + 1e-6 and found.min() >= 0 and found.max() <= 1
    assert objective(found) > objective(start)


def test_ig_sum_norm_at_beta_zero_is_pgd_adversarial_training(data):
    x, y = data
    model = _model("ig_sum_norm")
    ours = _defense("ig_sum_norm", beta=0.0, steps=3, step_size=0.1, ramp_fraction=0.0)
    madry = build_defense("pgd_adv", defense_params("pgd_adv", {"steps": 3, "step_size": 0.1, "epsilon": 0.3}))
    madry.prepare(TrainContext(train_model=lambda fn, s: None, total_steps=0))
    torch.testing.assert_close(ours.attack(model, x, y, step=5), _pgd_point(model, x, y, seed=5), rtol=0, atol=0)
    torch.testing.assert_close(ours.loss(model, x, y, step=5), madry.loss(model, x, y, step=5), rtol=0, atol=0)


def _pgd_point(model, x, y, seed):
    from advlegit.generation.attacks.pgd import pgd_linf
    return pgd_linf(model.eval(), x, y, epsilon=0.3, step_size=0.1, steps=3, random_start=True, seed=seed).images


def test_etmann_penalty_is_the_squared_gradient_of_the_batch_mean(data):
    """Their formula literally (reference_batch_size = 0): lambda * mean_i ||d mean-NLL / dx_i||^2;
    with the default reference batch it is lambda / 100^2 per example whatever the batch."""
    x, y = data
    model = _model("etmann_gradreg")
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xg), y), xg, create_graph=True)
    literal = F.cross_entropy(model(x), y) + 7.0 * g.pow(2).flatten(1).sum(1).mean()
    defense = _defense("etmann_gradreg", lambda_=7.0, reference_batch_size=0)
    torch.testing.assert_close(defense.loss(model, x, y, 0), literal)
    assert _defense("etmann_gradreg", lambda_=7.0).per_example_lambda(len(x), 0) == pytest.approx(7.0 / 100**2)


def test_cam_discrepancy_matches_a_hand_computation(data):
    x, y = data[0][:3], data[1][:3]
    model = _model("int").eval()
    x_adv = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    probs = F.softmax(model(x_adv), dim=1)
    expected = []
    for i in range(3):
        cls = list(range(10))
        diff = {c: (cam(model, x_adv[i:i + 1], c) - cam(model, x[i:i + 1], c)).abs().sum() for c in cls}
        others = [c for c in cls if c != y[i]]
        weights = probs[i, others] / probs[i, others].sum()
        expected.append(diff[int(y[i])] + sum(w * diff[c] for w, c in zip(weights, others, strict=True)))
    torch.testing.assert_close(cam_discrepancy(model, x, x_adv, y), torch.stack(expected))


def test_int_epsilon_schedule_fractions_are_configurable():
    """ramp_start = 0.2, ramp_end = 1.0 (the reduced CPU schedule): 0 for the first 20% of
    training, then linear to eps at the end. The paper's default: tests/generation/test_paper_settings.py."""
    defense = _defense("int", total_steps=100, ramp_start=0.2, ramp_end=1.0)
    assert defense.epsilon_at(0) == 0 and defense.epsilon_at(19) == 0
    assert defense.epsilon_at(59) == pytest.approx(0.3 * 0.5)
    assert defense.epsilon_at(99) == pytest.approx(0.3)
    assert delayed_ramp(5, 0, 0.2, 1.0) == 1.0  # total unknown: full budget


@pytest.mark.parametrize("kind", ["int", "int2"])
def test_int_regularizer_is_zero_while_epsilon_is_zero(kind, data):
    x, y = data
    model = _model(kind)
    defense = _defense(kind, total_steps=100)
    torch.testing.assert_close(defense.loss(model, x, y, step=0), F.cross_entropy(model(x), y))


@pytest.mark.parametrize("kind", ["int", "int2"])
def test_cam_defenses_name_the_architecture_they_need(kind, data):
    x, y = data
    with pytest.raises(ValueError, match=rf"{kind}.*architecture = \"gap_cnn\""):
        _defense(kind).loss(RossCNN(width=0.25), x, y, 0)


@pytest.mark.parametrize("kind, bad, message", [
    ("etmann_gradreg", {"lambda_": -1.0}, "lambda_"),
    ("etmann_gradreg", {"reference_batch_size": -5}, "reference_batch_size"),
    ("ig_norm", {"epsilon": 1.5}, "ig_norm: epsilon"),
    ("ig_norm", {"ig_steps": 0}, "ig_steps"),
    ("ig_norm", {"steps": 0}, "steps"),
    ("ig_sum_norm", {"beta": -0.1}, "ig_sum_norm: beta"),
    ("ig_sum_norm", {"step_size": 0.0}, "step_size"),
    ("ig_sum_norm", {"ramp_fraction": 2.0}, "ramp_fraction"),
    ("int", {"gamma": -1.0}, "int: gamma"),
    ("int", {"ramp_start": 0.6, "ramp_end": 0.4}, "ramp_end"),
    ("int2", {"ramp_end": 1.2}, "int2: ramp_end"),
])
def test_parameters_are_validated_with_clear_messages(kind, bad, message):
    with pytest.raises(ValueError, match=message):
        defense_params(kind, bad)


def test_every_new_defense_is_registered_with_valid_defaults():
    for kind in NEW:
        assert kind in DEFENSES
        defense_params(kind, {})
    assert defense_params("ig_norm", {"lambda": 2})["lambda_"] == 2.0


@pytest.mark.parametrize("kind", NEW)
def test_a_few_steps_reduce_the_loss(kind, data):
    x, y = data
    x, y = x[:8], y[:8]
    model = _model(kind, seed=3)
    defense = _defense(kind, **({"steps": 1, "ig_steps": 2, "inner_ig_steps": 1} if kind.startswith("ig") else {}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = defense.loss(model.train(), x, y, step=7)  # a fixed step: the same attack start each time
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0], losses
