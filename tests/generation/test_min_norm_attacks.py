"""DeepFool and Carlini-Wagner L2 against torchattacks 3.5.1 (test oracle only), failure reporting,
and batch independence."""
import pytest
import torch

from advlegit.generation.attacks import ATTACKS, perturbation_norms
from advlegit.generation.attacks.carlini_wagner import cw_l2
from advlegit.generation.attacks.deepfool import deepfool

torchattacks = pytest.importorskip("torchattacks")


@pytest.fixture(scope="module")
def correct(normal_model, batch):
    x, y = batch
    ok = normal_model(x).argmax(1) == y
    return x[ok][:16], y[ok][:16]


def test_registered():
    assert ATTACKS["deepfool"] is deepfool and ATTACKS["cw_l2"] is cw_l2


def _oracle(model, x, y, adv):
    return model(adv).argmax(1) != y, (adv - x).flatten(1).norm(dim=1)


def test_deepfool_matches_torchattacks_away_from_the_box(normal_model, correct):
    # Digits squeezed into [0.3, 0.7]: the [0,1] clip never binds, so both compute the same steps.
    x, y = correct[0] * 0.4 + 0.3, correct[1]
    ok = normal_model(x).argmax(1) == y
    x, y = x[ok], y[ok]
    ours = deepfool(normal_model, x, y, steps=50, overshoot=0.02)
    theirs = torchattacks.DeepFool(normal_model, steps=50, overshoot=0.02)(x, y)
    their_success, their_l2 = _oracle(normal_model, x, y, theirs)
    assert len(y) >= 8 and ours.success.all() and their_success.all()
    assert torch.allclose(ours.norms["l2"], their_l2, rtol=1e-3, atol=1e-4)


def test_deepfool_does_not_stall_at_the_box(normal_model, correct):
    # On real digits most pixels sit at 0; torchattacks' clipped steps stall there, ours move on.
    x, y = correct
    ours = deepfool(normal_model, x, y, steps=10)
    assert ours.success.all()
    assert torch.all(ours.norms["l2"] < 5.0)


def test_cw_finds_perturbations_no_larger_than_torchattacks(normal_model, correct):
    x, y = correct
    ours = cw_l2(normal_model, x, y, c=1.0, steps=30, lr=0.1, binary_search_steps=2)
    their_success, their_l2 = _oracle(normal_model, x, y,
                                      torchattacks.CW(normal_model, c=1.0, steps=30, lr=0.1)(x, y))
    assert ours.success.float().mean() >= their_success.float().mean()
    assert ours.success.float().mean() > 0.9
    both = ours.success & their_success
    assert both.sum() >= 3
    # the binary search over c only ever keeps a smaller success than the single c = 1 run finds
    assert torch.all(ours.norms["l2"][both] <= their_l2[both] * 1.02 + 1e-3)


def test_cw_targeted_reaches_the_target(normal_model, correct):
    x, y = correct
    t = (y + 1) % 10
    res = cw_l2(normal_model, x, y, target=t, c=10.0, steps=30, lr=0.2, binary_search_steps=2)
    assert torch.equal(res.success, normal_model(res.images).argmax(1) == t)
    assert res.success.float().mean() > 0.8


@pytest.mark.parametrize("attack, params", [
    (deepfool, {"steps": 0}),
    (cw_l2, {"steps": 2, "c": 1e-6, "lr": 1e-4, "binary_search_steps": 1}),
])
def test_a_failed_attack_is_reported_as_failed(normal_model, correct, attack, params):
    x, y = correct
    res = attack(normal_model, x, y, **params)
    assert not res.success.any()
    assert torch.equal(normal_model(res.images).argmax(1), y)
    expected = perturbation_norms(x, res.images)
    for k in ("l2", "linf", "l0"):
        assert torch.allclose(res.norms[k], expected[k])


@pytest.mark.parametrize("attack, params", [
    (deepfool, {"steps": 20}),
    (cw_l2, {"steps": 10, "lr": 0.05, "binary_search_steps": 2}),
])
def test_batched_equals_one_image_at_a_time(normal_model, correct, attack, params):
    x, y = correct[0][:6], correct[1][:6]
    together = attack(normal_model, x, y, **params)
    alone = [attack(normal_model, x[i:i + 1], y[i:i + 1], **params) for i in range(len(x))]
    assert torch.allclose(together.images, torch.cat([a.images for a in alone]), atol=1e-4)
    assert torch.equal(together.success, torch.cat([a.success for a in alone]))


def test_deterministic(normal_model, correct):
    x, y = correct
    a = cw_l2(normal_model, x, y, steps=10, binary_search_steps=2).images
    b = cw_l2(normal_model, x, y, steps=10, binary_search_steps=2).images
    assert torch.equal(a, b)
