import pytest
import torch
import torch.nn.functional as F

from advlegit.generation.attacks import (  # noqa: F401
    ATTACKS,
    attack_param_names,
    bisection_rounds,
    fgsm,
    get_attack,
    jsma,
    minimal_budget,
    pgd_l2,
    pgd_linf,
    tgsm,
    tgsm_iterative,
)
from advlegit.generation.attacks.fgsm import fgsm as fgsm_fn
from advlegit.generation.attacks.jsma import jsma as jsma_fn
from advlegit.generation.attacks.pgd import pgd_l2 as pgd_l2_fn
from advlegit.generation.attacks.pgd import pgd_linf as pgd_linf_fn
from advlegit.generation.attacks.pgd import tgsm_iterative as tgsm_it


def _manual_grad(model, x, labels):
    x = x.clone().requires_grad_(True)
    F.cross_entropy(model(x), labels).backward()
    return x.grad


def test_fgsm_equals_its_formula(normal_model, batch):
    x, y = batch
    eps = 0.2
    expected = (x + eps * _manual_grad(normal_model, x, y).sign()).clamp(0, 1)
    res = fgsm_fn(normal_model, x, y, epsilon=eps)
    assert torch.equal(res.images, expected)
    # targeted form steps *down* the target's loss
    t = (y + 3) % 10
    expected_t = (x - eps * _manual_grad(normal_model, x, t).sign()).clamp(0, 1)
    assert torch.equal(fgsm_fn(normal_model, x, y, target=t, epsilon=eps).images, expected_t)


def test_fgsm_success_mask_and_norms(normal_model, batch):
    x, y = batch
    res = fgsm_fn(normal_model, x, y, epsilon=0.3)
    pred = normal_model(res.images).argmax(1)
    assert torch.equal(res.success, pred != y)
    assert torch.all(res.norms["linf"] <= 0.3 + 1e-6)
    assert torch.allclose(res.norms["l2"], (res.images - x).flatten(1).norm(dim=1))


@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_pgd_linf_stays_in_ball_and_box(normal_model, batch, eps):
    x, y = batch
    res = pgd_linf_fn(normal_model, x, y, epsilon=eps, steps=10, step_size=0.1)
    assert (res.images - x).abs().max() <= eps + 1e-6
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_pgd_l2_stays_in_ball_and_box(normal_model, batch):
    x, y = batch
    res = pgd_l2_fn(normal_model, x, y, epsilon=1.5, steps=10, step_size=0.5)
    assert torch.all((res.images - x).flatten(1).norm(dim=1) <= 1.5 + 1e-4)
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_pgd_is_deterministic_under_a_seed(normal_model, batch):
    x, y = batch
    a = pgd_linf_fn(normal_model, x, y, epsilon=0.3, steps=3, seed=7).images
    b = pgd_linf_fn(normal_model, x, y, epsilon=0.3, steps=3, seed=7).images
    c = pgd_linf_fn(normal_model, x, y, epsilon=0.3, steps=3, seed=8).images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_pgd_matches_torchattacks_oracle(normal_model, batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = batch
    ours = pgd_linf_fn(normal_model, x, y, epsilon=0.3, step_size=0.01, steps=40, random_start=False).images
    theirs = torchattacks.PGD(normal_model, eps=0.3, alpha=0.01, steps=40, random_start=False)(x, y)
    assert (ours - theirs).abs().max() < 1e-5


def test_untargeted_pgd_fools_undefended_model(normal_model, batch):
    x, y = batch
    assert pgd_linf_fn(normal_model, x, y, epsilon=0.3, steps=20).success.float().mean() > 0.9


@pytest.mark.parametrize("name", ["tgsm_iterative", "pgd_linf", "jsma"])
def test_targeted_attacks_reach_the_target(normal_model, batch, name):
    x, y = batch
    x, y = (x[:16], y[:16]) if name == "jsma" else (x, y)
    t = (y + 1) % 10
    params = {"jsma": {}, "tgsm_iterative": {"epsilon": 0.3}, "pgd_linf": {"epsilon": 0.3, "steps": 20}}[name]
    res = get_attack(name)(normal_model, x, y, target=t, **params)
    rate = res.success.float().mean().item()
    assert rate > 0.8, f"{name} reached the target on only {rate:.0%}"
    assert torch.equal(res.success, normal_model(res.images).argmax(1) == t)


def test_single_step_tgsm_defaults_to_next_class(normal_model, batch):
    x, y = batch
    a = tgsm(normal_model, x, y, epsilon=0.2)
    b = fgsm_fn(normal_model, x, y, target=(y + 1) % 10, epsilon=0.2)
    assert torch.equal(a.images, b.images)


@pytest.mark.parametrize("gamma", [0.05, 0.25])
def test_jsma_changes_at_most_gamma_of_the_pixels(normal_model, batch, gamma):
    x, y = batch
    x, y = x[:12], y[:12]
    res = jsma_fn(normal_model, x, y, target=(y + 5) % 10, theta=1.0, gamma=gamma)
    changed = ((res.images - x).abs() > 0).flatten(1).sum(1)
    assert torch.all(changed <= gamma * x[0].numel())
    assert torch.equal(res.norms["l0"], changed.float())
    assert res.images.min() >= 0 and res.images.max() <= 1


def test_jsma_batched_equals_one_at_a_time(normal_model, batch):
    x, y = batch
    x, y = x[:4], y[:4]
    t = (y + 2) % 10
    together = jsma_fn(normal_model, x, y, target=t).images
    alone = torch.cat([jsma_fn(normal_model, x[i:i + 1], y[i:i + 1], target=t[i:i + 1]).images for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-6)


def test_minimal_budget_bisects_to_the_resolution(normal_model, batch):
    x, y = batch
    t = (y + 1) % 10

    def run(idx, budget):
        return tgsm_it(normal_model, x[idx], y[idx], target=t[idx], epsilon=budget.view(-1, 1, 1, 1).float())

    images, ok, budget = minimal_budget(run, len(x), max_budget=0.5, resolution=0.01, device=x.device)
    assert ok.any()
    width = 0.5 / 2 ** bisection_rounds(0.5, 0.01)
    assert width <= 0.01
    idx = ok.nonzero().flatten()
    b = budget[idx]
    assert torch.all((images[idx] - x[idx]).flatten(1).abs().amax(1) <= b + 1e-6)
    assert run(idx, b).success.all()
    # the bracket closed: one bracket width below the budget found, (nearly) every image failed
    lower = b > width
    assert run(idx[lower], b[lower] - width).success.float().mean() <= 0.1
    assert torch.isnan(budget[~ok]).all()
    # a failed attack is reported as failed, never returned as the clean image
    assert torch.all((images[~ok] - x[~ok]).flatten(1).abs().amax(1) > 0)


def test_registry_signatures_are_uniform():
    for name, fn in ATTACKS.items():
        assert "target" not in attack_param_names(name)
        import inspect
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:3]] == ["model", "x", "y"], name
        assert params[3].name == "target" and params[3].kind is params[3].KEYWORD_ONLY, name
