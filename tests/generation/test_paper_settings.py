"""The seed papers' own settings (issue 15, item 4): each default is the paper's, checked against
their code's formula or number; tests pass small steps explicitly, the defaults stay the papers'."""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advlegit.generation import attribution_metrics as am
from advlegit.generation.attribution_attack import top_k_attack
from advlegit.generation.attribution_metrics import kendall_tau
from advlegit.generation.config import ConfigError, InterpretabilityConfig, from_dict
from advlegit.generation.defenses import TrainContext, build_defense, defense_params
from advlegit.generation.defenses.attribution_terms import cam_discrepancy
from advlegit.generation.defenses.fgsm_adv import fgsm_from_predictions
from advlegit.generation.defenses.gradreg import input_gradient_penalty
from advlegit.generation.defenses.inner_max import linf_pgd_maximize
from advlegit.generation.models import GapCNN, RossCNN
from advlegit.generation.saliency import cam_all_classes, integrated_gradients
from advlegit.generation.train import model_specs, train_or_load


def _defense(kind: str, total_steps: int = 0, **params):
    defense = build_defense(kind, defense_params(kind, params))
    defense.prepare(TrainContext(train_model=lambda fn, s: None, total_steps=total_steps))
    return defense


@pytest.fixture(scope="module")
def data(mnist):
    x, y = mnist["train"]
    return x[:10], y[:10].long()


# --- Boopathy et al. ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["int", "int2"])
def test_int_epsilon_ramps_from_step_2k_to_10k_of_110k_by_default(kind):
    defense = _defense(kind, total_steps=110_000)
    assert defense.epsilon_at(1_998) == 0                       # before step 2k
    assert defense.epsilon_at(5_999) == pytest.approx(0.15)     # half-way between 2k and 10k
    assert defense.epsilon_at(9_999) == pytest.approx(0.3)
    assert defense.epsilon_at(60_000) == pytest.approx(0.3)     # constant for the remaining 91%
    short = _defense(kind, total_steps=1100)                    # fractions: the same shape at any length
    mean = sum(short.epsilon_at(s) for s in range(1100)) / 1100
    assert mean == pytest.approx(0.945 * 0.3, abs=0.003)        # the audit's 0.945 eps_max


def test_int_adv_ascends_cross_entropy_plus_gamma_d(data):
    """Their attack ascends d(loss)/dx'; with CE at x' (Int-Adv) that is CE(x') + gamma * D."""
    x, y = data
    torch.manual_seed(0)
    model = GapCNN(width=0.25).eval()
    defense = _defense("int", adversarial_ce=True, gamma=0.01, steps=3, step_size=0.1)
    found = defense.attack(model, x, y, step=5)
    clean = cam_all_classes(model, x)[0].detach()
    pgd = dict(epsilon=0.3, step_size=0.1, steps=3, seed=5)
    expected = linf_pgd_maximize(lambda z: (F.cross_entropy(model(z), y, reduction="none")
                                            + 0.01 * cam_discrepancy(model, x, z, y, clean)).sum(), x, **pgd)
    d_only = linf_pgd_maximize(lambda z: cam_discrepancy(model, x, z, y, clean).sum(), x, **pgd)
    assert not torch.equal(expected, d_only)  # the two objectives lead to different points here
    torch.testing.assert_close(found, expected, rtol=0, atol=0)
    # plain Int still ascends D (gamma * D has D's gradient signs)
    torch.testing.assert_close(_defense("int", steps=3, step_size=0.1).attack(model, x, y, step=5), d_only,
                               rtol=0, atol=0)


def test_one_class_int_keeps_only_the_true_class_term(data):
    x, y = data
    torch.manual_seed(1)
    model = GapCNN(width=0.25).eval()
    x_adv = (x + 0.2 * torch.rand_like(x)).clamp(0, 1)
    diff = (cam_all_classes(model, x_adv)[0] - cam_all_classes(model, x)[0]).abs().flatten(2).sum(2)
    true_term = diff.gather(1, y[:, None]).squeeze(1)
    defense = _defense("int", one_class=True, steps=2, step_size=0.1)
    expected = F.cross_entropy(model(x), y) + 0.01 * true_term.mean()
    torch.testing.assert_close(defense.loss_at(model, x, x_adv, y), expected)
    assert (cam_discrepancy(model, x, x_adv, y) > true_term).all()  # the full D adds the other classes


def test_gap_net_has_signed_cams_and_no_head_bias():
    """Boopathy's Small net: no activation after the last conv, no bias, so logit = mean CAM exactly."""
    torch.manual_seed(2)
    model = GapCNN(width=0.25).double().eval()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    assert model.linear.bias is None and isinstance(model.features[-1], nn.Conv2d)
    cams, logits = cam_all_classes(model, x)
    torch.testing.assert_close(cams.mean(dim=(2, 3)), model(x), rtol=1e-12, atol=1e-12)
    assert (model.feature_maps(x) < 0).any()


def test_relative_cam_discrepancy_and_margin_do_not_reward_small_logits():
    """The audit: in raw units a model with small logits looks robust for that reason alone.
    Scaling the head by c scales the raw discrepancy and the margin by c; the relative one stays."""
    torch.manual_seed(4)
    model = GapCNN(width=0.25).double().eval()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    y, t = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    raw, size = am.cam_discrepancy(model, x, x_adv, y, t), am.cam_size(model, x, y)
    margin = am.logit_margin(model, x, y, t)
    with torch.no_grad():
        model.linear.weight.mul_(0.01)
    torch.testing.assert_close(am.cam_discrepancy(model, x, x_adv, y, t), 0.01 * raw)
    torch.testing.assert_close(am.cam_discrepancy(model, x, x_adv, y, t) / am.cam_size(model, x, y), raw / size)
    torch.testing.assert_close(am.logit_margin(model, x, y, t), 0.01 * margin)
    logits = model(x)
    torch.testing.assert_close(am.logit_margin(model, x, y, t),
                               0.5 * (logits[torch.arange(4), y] - logits[torch.arange(4), t]))


# --- Chen et al. ----------------------------------------------------------------------------------

def test_chen_defaults_are_the_papers():
    for kind in ("ig_norm", "ig_sum_norm"):
        p = defense_params(kind, {})
        assert (p["epsilon"], p["steps"], p["step_size"], p["ig_steps"], p["inner_ig_steps"], p["ramp_fraction"]) \
            == (0.3, 40, 0.01, 50, 10, 0.0)
    c = InterpretabilityConfig()
    assert (c.attack_steps, c.attack_step_size, c.attack_restarts, c.attack_k, c.attack_ig_steps, c.top_k) \
        == (100, 0.01, 3, 200, 100, 10 ** 2)
    assert c.softplus_beta == 1.0 and c.attack_select == "kendall_tau"
    params = inspect.signature(top_k_attack).parameters
    assert params["beta"].default == 1.0 and params["select"].default == "kendall_tau"
    with pytest.raises(ConfigError, match="attack_select"):
        from_dict({"interpretability": {"attack_select": "final"}})


def test_top_k_attack_uses_the_true_label_and_skips_misclassified_digits(normal_model, batch):
    x, y = batch
    pred = normal_model(x).argmax(1)
    correct = (pred == y).nonzero().squeeze(1)[:3]
    wrong_label = (y[correct[:2]] + 1) % 10       # two digits given a label the model does not predict
    xs = torch.cat([x[correct], x[correct[:2]]])
    ys = torch.cat([y[correct], wrong_label])
    res = top_k_attack(normal_model, xs, ys, epsilon=0.3, steps=3, step_size=0.04, k=100, restarts=1,
                       ig_steps=4, seed=0)
    assert res.attacked.tolist() == [True, True, True, False, False]
    assert torch.equal(res.images[3:], xs[3:]) and (res.images[:3] != xs[:3]).any()
    # the maps are the true label's (here the given label's), not the predicted one's
    ig = integrated_gradients(normal_model, xs, ys, steps=4).abs()
    torch.testing.assert_close(res.original_saliency, ig)


def test_top_k_attack_keeps_the_best_iterate_by_kendall_tau(normal_model, batch):
    """A run of n steps visits the first n iterates of a longer run (same seed), so the longer run's
    kept image can be no worse than any shorter run's: the final iterate would not pass this."""
    x, y = batch
    keep = (normal_model(x).argmax(1) == y).nonzero().squeeze(1)[:4]
    x, y = x[keep], y[keep]
    kw = dict(epsilon=0.3, step_size=0.1, k=100, restarts=1, ig_steps=4, seed=3)  # big steps: tau is not monotone
    taus = []
    for steps in (1, 2, 3, 4, 5, 6):
        res = top_k_attack(normal_model, x, y, steps=steps, **kw)
        tau = kendall_tau(res.original_saliency, integrated_gradients(normal_model, res.images, y, steps=4).abs())
        torch.testing.assert_close(res.score, tau.to(res.score.dtype))
        taus.append(tau)
    for shorter in taus[:-1]:
        assert (taus[-1] <= shorter + 1e-12).all()


# --- Ross & Doshi-Velez ---------------------------------------------------------------------------

def test_both_halves_the_penalty_with_the_cross_entropies(data):
    """Their train_models.py: (CE + lambda_R * l2dbl + CE_adv) / 2, so the default lambda = 110
    weighs the penalty 55 per example -- the paper's."""
    x, y = data
    torch.manual_seed(3)
    model = RossCNN(width=0.25, dropout=0.0).train()
    defense = _defense("gradreg_adv")
    assert defense.params.lambda_ == 110.0
    x_adv = fgsm_from_predictions(model, x, 0.3)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    pen = input_gradient_penalty(logits, xg, y, "y")
    expected = 0.5 * F.cross_entropy(logits, y) + 55.0 * pen + 0.5 * F.cross_entropy(model(x_adv), y)
    torch.testing.assert_close(defense.loss(model, x, y, step=0), expected)


def test_pgd_adversarial_training_defaults_are_madrys():
    p = defense_params("pgd_adv", {})
    assert (p["epsilon"], p["steps"], p["step_size"], p["ramp_fraction"]) == (0.3, 40, 0.01, 0.0)


def test_ross_cnn_batch_norm_option():
    """As their tf-slim MNIST_CNN: batch norm after both convs and the hidden FC, before the ReLU;
    none on the output layer; the layer bias dropped (the norm's shift replaces it)."""
    plain, normed = RossCNN(width=0.25), RossCNN(width=0.25, batch_norm=True)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in plain.modules())
    layers = list(normed.features) + list(normed.classifier)
    norms = [i for i, m in enumerate(layers) if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert len(norms) == 3
    for i in norms:
        assert isinstance(layers[i - 1], (nn.Conv2d, nn.Linear)) and layers[i - 1].bias is None
        assert isinstance(layers[i + 1], nn.ReLU)
    assert isinstance(layers[-1], nn.Linear) and layers[-1].bias is not None
    with pytest.raises(ValueError, match="gap_cnn"):
        GapCNN(batch_norm=True)


def test_batch_norm_reaches_the_trained_ross_models_only(mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("ADVLEGIT_CACHE_DIR", str(tmp_path))
    cfg = from_dict({"model": {"width": 0.25, "batch_norm": True}, "training": {"steps": 2, "batch_size": 8},
                     "defenses": [{"name": "normal"}, {"name": "gap", "kind": "normal", "architecture": "gap_cnn"}]})
    specs = {s.name: s for s in model_specs(cfg, "0" * 64)}
    assert specs["normal"].batch_norm and specs["rater"].batch_norm and not specs["gap"].batch_norm
    x, y = mnist["train"]
    trained = train_or_load(specs["normal"], x[:64], y[:64], 10, torch.device("cpu"))
    assert any(isinstance(m, nn.BatchNorm2d) for m in trained.model.modules())
    again = train_or_load(specs["normal"], x[:64], y[:64], 10, torch.device("cpu"))  # running stats reload
    assert again.cached and torch.equal(again.model.features[1].running_mean, trained.model.features[1].running_mean)
    assert dataclasses.replace(specs["normal"], batch_norm=False).key() != specs["normal"].key()  # own cache entry
    with pytest.raises(ConfigError, match="batch_size must be at least 2"):
        from_dict({"model": {"batch_norm": True}, "training": {"batch_size": 1}})
