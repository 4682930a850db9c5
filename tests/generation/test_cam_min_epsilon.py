"""Boopathy et al.'s protocol for the CAM discrepancy: a targeted attack to a random class at each
image's smallest successful epsilon, the discrepancy beside the margin and divided by CAM size."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from advlegit.generation.attribution_metrics import cam_discrepancy, cam_size
from advlegit.generation.cam_attack import random_targets, target_margin, targeted_min_epsilon
from advlegit.generation.config import InterpretabilityConfig
from advlegit.generation.interpretability import evaluate_model
from advlegit.generation.models import build_model


def test_random_targets_are_never_the_true_class_and_reach_every_other():
    y = torch.arange(10).repeat(200)
    t = random_targets(y, 10, seed=3)
    assert not (t == y).any() and len(set(t[y == 4].tolist())) == 9
    assert torch.equal(t, random_targets(y, 10, seed=3)) and not torch.equal(t, random_targets(y, 10, seed=4))


def test_target_margin_is_the_best_other_class_minus_the_target():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert target_margin(logits, torch.tensor([1, 1])).tolist() == [2.0, -4.0]


def _linear_two_class(bias: float) -> nn.Module:
    """f_0 = sum(x) + bias, f_1 = 0 on 16 pixels: from x = 0.5 the target 1 is reached exactly at
    epsilon* = (8 + bias) / 16 (every pixel moved down by epsilon)."""
    lin = nn.Linear(16, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0] = 1.0
        lin.bias.copy_(torch.tensor([bias, 0.0]))
    return nn.Sequential(nn.Flatten(), lin)


@pytest.mark.parametrize("bias, expected", [(-5.6, 0.15), (-7.2, 0.05), (-2.0, 0.375)])
def test_the_search_finds_the_smallest_epsilon_of_a_linear_model(bias, expected):
    model = _linear_two_class(bias)
    x = torch.full((1, 1, 4, 4), 0.5)
    res = targeted_min_epsilon(model, x, torch.tensor([1]))
    eps = float(res.epsilon[0])
    # the upper end of the bracket: 10 rounds leave it 0.2 / 2**6 wide at most here
    assert res.success.all() and expected - 1e-6 <= eps <= expected + 0.2 / 2**6
    assert (x - res.images).abs().max() <= eps + 1e-6


def test_an_unreachable_target_is_reported_as_failed_with_no_epsilon():
    model = _linear_two_class(100.0)  # needs epsilon 6.75: beyond [0, 1]
    res = targeted_min_epsilon(model, torch.full((1, 1, 4, 4), 0.5), torch.tensor([1]), rounds=6)
    assert not res.success.any() and torch.isnan(res.epsilon).all()


def test_dividing_by_cam_size_removes_the_logit_scale_that_raw_units_keep():
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x = torch.rand(6, 1, 28, 28)
    x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    y, t = torch.arange(6), torch.arange(6) + 1
    raw = cam_discrepancy(model, x, x_adv, y, t)
    rel = raw / cam_size(model, x, y)
    with torch.no_grad():
        model.linear.weight.mul_(10)  # the same classifier, logits ten times larger
    raw10 = cam_discrepancy(model, x, x_adv, y, t)
    assert torch.allclose(raw10, 10 * raw, rtol=1e-4)
    assert torch.allclose(raw10 / cam_size(model, x, y), rel, rtol=1e-4)


def test_evaluate_model_reports_the_discrepancy_at_the_smallest_epsilon_beside_the_margin(mnist):
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x, y = mnist["test"][0][:8], mnist["test"][1][:8]
    cfg = InterpretabilityConfig(enabled=True, alignment=False, robustness_attacks=[], attribution_attack=False,
                                 pgd_steps=2, cam_attack_steps=3, cam_search_rounds=4)
    r = evaluate_model(model, x, y, cfg)
    low, per = r["cam_min_epsilon"], r["per_image"]["cam_min_epsilon"]
    assert low["n_images"] == 8 and low["n_success"] == sum(per["success"])
    ok = torch.tensor(per["success"])
    target = torch.tensor(per["target"])
    assert not (target == y).any()
    margin = torch.tensor(per["margin"])
    assert low["margin_median"] == pytest.approx(margin[ok].median().item(), abs=1e-5)
    eps = torch.tensor([float("nan") if v is None else v for v in per["epsilon"]])
    assert (eps[ok] > 0).all() and (eps[ok] <= 1).all()
    size = torch.tensor(per["cam_size"])
    two = torch.tensor(per["two_class"])
    assert low["two_class_relative"] == pytest.approx((two / size)[ok].mean().item(), rel=1e-4)
    assert "cam_discrepancy" in r  # the untargeted fixed-epsilon numbers stay beside it
