"""Saliency methods against Captum (test-only oracle), hand computations and closed forms, and
the property the training losses rely on: with create_graph=True gradients reach the weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Saliency
from torch import nn
from torch.func import functional_call

from advlegit.generation import saliency as S
from advlegit.generation.models import GapCNN, RossCNN

TOL = dict(rtol=1e-9, atol=1e-12)  # float64 throughout: differences are round-off only


@pytest.fixture(scope="module")
def gap() -> GapCNN:
    torch.manual_seed(0)
    return GapCNN(width=0.25).double().eval()


@pytest.fixture(scope="module")
def ross() -> RossCNN:
    torch.manual_seed(1)
    return RossCNN(width=0.125).double().eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


CLASSES = torch.tensor([0, 3, 5, 7, 9])


def test_logit_gradient_matches_captum_saliency(gap, ross, x):
    for model in (gap, ross):
        ours = S.logit_gradient(model, x, CLASSES)
        ref = Saliency(model).attribute(x, target=CLASSES, abs=False)
        torch.testing.assert_close(ours, ref, **TOL)
        predicted = model(x).argmax(1)
        torch.testing.assert_close(
            S.logit_gradient(model, x), Saliency(model).attribute(x, target=predicted, abs=False), **TOL
        )
    torch.testing.assert_close(S.logit_gradient(gap, x, 4), Saliency(gap).attribute(x, target=4, abs=False), **TOL)


def test_loss_gradient_is_each_examples_own_gradient(ross, x):
    y = torch.tensor([1, 2, 3, 4, 5])
    ours = S.loss_gradient(ross, x, y)
    for i in range(len(x)):
        xi = x[i:i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(F.cross_entropy(ross(xi), y[i:i + 1]), xi)
        torch.testing.assert_close(ours[i:i + 1], gi, **TOL)


def test_smoothgrad_matches_captum_noise_tunnel_on_the_same_noise(gap, x):
    n, std = 6, 0.15
    torch.manual_seed(123)
    ref = NoiseTunnel(Saliency(gap)).attribute(x, nt_type="smoothgrad", nt_samples=n, stdevs=std,
                                               target=CLASSES, abs=False)
    # Captum's draw: torch.normal over the inputs repeat_interleave'd n times (example-major).
    torch.manual_seed(123)
    drawn = torch.normal(0, torch.tensor(std).repeat((len(x) * n, *x.shape[1:])))  # float32, as Captum
    noise = drawn.to(x.dtype).view(len(x), n, *x.shape[1:]).transpose(0, 1)
    ours = S.smoothgrad(gap, x, CLASSES, n=n, noise=noise)
    torch.testing.assert_close(ours, ref, **TOL)


def test_smoothgrad_is_seeded_and_its_noise_has_the_requested_scale(gap, x):
    a = S.smoothgrad(gap, x, CLASSES, n=4, sigma=0.2, seed=7)
    torch.testing.assert_close(a, S.smoothgrad(gap, x, CLASSES, n=4, sigma=0.2, seed=7), rtol=0, atol=0)
    assert not torch.allclose(a, S.smoothgrad(gap, x, CLASSES, n=4, sigma=0.2, seed=8))
    # A linear model's gradient ignores the noise: SmoothGrad == gradient, whatever sigma.
    linear = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double()
    torch.testing.assert_close(
        S.smoothgrad(linear, x, CLASSES, n=3, sigma=0.5), S.logit_gradient(linear, x, CLASSES), **TOL
    )
    # sigma is a fraction of the input range: sigma=0.1 over a range of 2 is a std of 0.2.
    g = torch.Generator().manual_seed(0)
    expected = torch.stack([torch.randn(x.shape, generator=g, dtype=x.dtype) * 0.2 for _ in range(2)])
    torch.testing.assert_close(S.smoothgrad(gap, x, CLASSES, n=2, sigma=0.1, input_range=2.0, seed=0),
                               S.smoothgrad(gap, x, CLASSES, n=2, noise=expected), **TOL)


@pytest.mark.parametrize("method", ["riemann_right", "riemann_middle"])
def test_integrated_gradients_match_captum(gap, x, method):
    baseline = torch.full_like(x, 0.25)
    for base in (None, baseline):
        ours = S.integrated_gradients(gap, x, CLASSES, baseline=base, steps=16, method=method)
        ref = IntegratedGradients(gap).attribute(x, baselines=0.0 if base is None else base, target=CLASSES,
                                                 n_steps=16, method=method)
        torch.testing.assert_close(ours, ref, **TOL)
    chunked = S.integrated_gradients(gap, x, CLASSES, steps=16, method=method, points_per_call=5)
    torch.testing.assert_close(chunked, S.integrated_gradients(gap, x, CLASSES, steps=16, method=method), **TOL)


def test_integrated_gradients_completeness(ross, x):
    """sum_i IG_i -> f_c(x) - f_c(baseline) as m grows (exact in the limit)."""
    baseline = torch.full_like(x, 0.1)
    gap_to_explain = (ross(x) - ross(baseline)).gather(1, CLASSES[:, None]).squeeze(1)
    errors = []
    for steps in (8, 256):
        ig = S.integrated_gradients(ross, x, CLASSES, baseline=baseline, steps=steps, method="riemann_middle")
        errors.append((ig.flatten(1).sum(1) - gap_to_explain).abs().max().item())
    scale = gap_to_explain.abs().max().item()
    assert errors[1] < 5e-3 * scale, errors  # ReLU kinks: first-order convergence, not exact
    assert errors[1] < errors[0] / 10, errors


def test_path_ig_of_a_quadratic_is_exact_with_the_midpoint_rule():
    """f(z) = 1/2 z'Az has a gradient linear along the path, so the midpoint sum is exact:
    IG_i = d_i * [A (x + d/2)]_i with d = x_end - x, and sum IG = f(x_end) - f(x)."""
    g = torch.Generator().manual_seed(3)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T
    x, x_end = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    f = lambda z: 0.5 * ((z @ a) * z).sum(1)  # noqa: E731
    ig = S.path_integrated_gradients(f, x, x_end, steps=3, method="riemann_middle")
    d = x_end - x
    torch.testing.assert_close(ig, d * ((x + d / 2) @ a), **TOL)
    torch.testing.assert_close(ig.sum(1), f(x_end) - f(x), **TOL)


def test_path_ig_of_the_loss_between_two_images(ross, x):
    y = torch.tensor([1, 2, 3, 4, 5])
    x_end = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4), dtype=x.dtype)).clamp(0, 1)
    # Completeness to 1e-6 needs a smooth net (the midpoint rule then errs by O(1/m^2)).
    torch.manual_seed(5)
    smooth = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    smooth_loss = S.per_example_loss(smooth, y)
    ig = S.path_integrated_gradients(smooth_loss, x, x_end, steps=128, method="riemann_middle")
    torch.testing.assert_close(ig.flatten(1).sum(1), smooth_loss(x_end) - smooth_loss(x), rtol=1e-6, atol=1e-9)
    loss = S.per_example_loss(ross, y)
    # One point per call (labels repeat once) gives the same sum as all points at once.
    torch.testing.assert_close(S.path_integrated_gradients(loss, x, x_end, steps=7, points_per_call=1),
                               S.path_integrated_gradients(loss, x, x_end, steps=7), **TOL)
    # Chen et al.'s formula, written out.
    ks = [(k / 7) for k in range(1, 8)]
    grads = sum(S.loss_gradient(ross, x + a * (x_end - x), y) for a in ks)
    torch.testing.assert_close(S.path_integrated_gradients(loss, x, x_end, steps=7), (x_end - x) * grads / 7, **TOL)


def test_cam_matches_hand_computation_and_the_logits(gap, x):
    ours = S.cam(gap, x, CLASSES)
    maps = gap.features(x)
    hand = torch.stack([sum(gap.linear.weight[c, k] * maps[i, k] for k in range(maps.shape[1]))
                        for i, c in enumerate(CLASSES.tolist())])
    torch.testing.assert_close(ours, hand, **TOL)
    logits = gap(x).gather(1, CLASSES[:, None]).squeeze(1)
    torch.testing.assert_close(ours.mean(dim=(1, 2)), logits, **TOL)  # no head bias (Boopathy's net)
    torch.testing.assert_close(S.cam(gap, x), S.cam(gap, x, gap(x).argmax(1)), **TOL)


def test_grad_cam_matches_captum_and_is_relu_cam_for_a_gap_head(gap, ross, x):
    ours = S.grad_cam(gap, x, CLASSES)
    ref = LayerGradCam(gap, gap.features[-1]).attribute(x, target=CLASSES, relu_attributions=True).squeeze(1)
    torch.testing.assert_close(ours, ref, **TOL)
    h, w = ours.shape[1:]
    torch.testing.assert_close(ours, F.relu(S.cam(gap, x, CLASSES)) / (h * w), **TOL)
    # Any CNN with a conv layer; a layer can be named.
    named = S.grad_cam(ross, x, CLASSES, layer="features.3")
    ref = LayerGradCam(ross, ross.features[3]).attribute(x, target=CLASSES, relu_attributions=True).squeeze(1)
    torch.testing.assert_close(named, ref, **TOL)
    assert S.default_gradcam_layer(ross) is ross.features[4]


def test_methods_registry_and_the_gap_head_error(gap, ross, x):
    assert set(S.METHODS) == {"gradient", "smoothgrad", "integrated_gradients", "cam", "grad_cam"}
    for name, fn in S.METHODS.items():
        out = fn(gap, x, CLASSES)
        assert out.shape == (x.shape if name in ("gradient", "smoothgrad", "integrated_gradients") else (5, 7, 7))
        assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="gap_cnn"):
        S.METHODS["cam"](ross, x, CLASSES)
    with pytest.raises(ValueError, match="nn.Conv2d"):
        S.METHODS["grad_cam"](nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).double(), x, CLASSES)


def test_the_callers_train_or_eval_mode_is_left_alone(x):
    model = RossCNN(width=0.125).double().train()
    S.logit_gradient(model, x, CLASSES)
    S.integrated_gradients(model, x, CLASSES, steps=2)
    assert model.training
    model.eval()
    S.grad_cam(model, x, CLASSES)
    assert not model.training


# --- gradients reach the weights (a detached attribution fails these) ---------------------------

def _reference_ig_weight_grads(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, steps: int):
    """d ||IG||_1 / d weights with torch.func: an independent, functional implementation."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def ig_l1(p):
        def logit_sum(z):
            return functional_call(model, p, (z,)).gather(1, classes[:, None]).sum()
        total = sum(torch.func.grad(logit_sum)(k / steps * x) for k in range(1, steps + 1))
        return (x * total / steps).abs().sum()

    return torch.func.grad(ig_l1)(params)


def test_ig_with_create_graph_gives_the_right_weight_gradients(gap, x):
    ig = S.integrated_gradients(gap, x, CLASSES, steps=5, create_graph=True)
    grads = torch.autograd.grad(ig.abs().sum(), list(gap.parameters()), allow_unused=True)
    ref = _reference_ig_weight_grads(gap, x, CLASSES, steps=5)
    for (name, p), g in zip(gap.named_parameters(), grads, strict=True):
        torch.testing.assert_close(torch.zeros_like(p) if g is None else g, ref[name], **TOL)
    assert sum(g.abs().sum() for g in grads if g is not None) > 0
    with pytest.raises(RuntimeError):  # without create_graph the attribution is a constant
        torch.autograd.grad(S.integrated_gradients(gap, x, CLASSES, steps=5).abs().sum(), list(gap.parameters()))


def test_cam_weight_gradients_match_finite_differences(gap, x):
    x2 = x[:2]
    weight = gap.features[0].weight

    def objective() -> torch.Tensor:
        return S.cam(gap, x2, CLASSES[:2]).abs().sum()

    (analytic,) = torch.autograd.grad(objective(), weight)
    idx, h = (3, 0, 1, 2), 1e-6
    with torch.no_grad():
        weight[idx] += h
        up = objective()
        weight[idx] -= 2 * h
        down = objective()
        weight[idx] += h
    assert analytic.abs().sum() > 0
    torch.testing.assert_close(analytic[idx], (up - down) / (2 * h), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("method", ["gradient", "smoothgrad", "grad_cam", "path_ig"])
def test_create_graph_reaches_every_weight_that_matters(gap, x, method):
    y = torch.tensor([1, 2, 3, 4, 5])
    if method == "gradient":
        out = S.logit_gradient(gap, x, CLASSES, create_graph=True)
    elif method == "smoothgrad":
        out = S.smoothgrad(gap, x, CLASSES, n=2, create_graph=True)
    elif method == "grad_cam":
        out = S.grad_cam(gap, x, CLASSES, create_graph=True)
    else:
        out = S.path_integrated_gradients(S.per_example_loss(gap, y), x, x.flip(0), steps=3, create_graph=True)
    grads = torch.autograd.grad(out.abs().sum(), [gap.features[0].weight, gap.linear.weight])
    assert all(g.abs().sum() > 0 for g in grads)


def test_create_graph_reaches_the_input_end_of_a_path(ross, x):
    """The IG-NORM inner maximization differentiates ||IG(x -> x')||_1 with respect to x'."""
    y = torch.tensor([1, 2, 3, 4, 5])
    x_end = (x + 0.1).clamp(0, 1).requires_grad_(True)
    ig = S.path_integrated_gradients(S.per_example_loss(ross, y), x, x_end, steps=4, create_graph=True)
    (g,) = torch.autograd.grad(ig.abs().sum(), x_end)
    assert g.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(gap, x):
    model = GapCNN(width=0.25).double().eval()
    model.load_state_dict(gap.state_dict())
    cuda_model, xc, cc = model.cuda(), x.cuda(), CLASSES.cuda()
    for _name, fn in S.METHODS.items():
        torch.testing.assert_close(fn(cuda_model, xc, cc).cpu(), fn(gap, x, CLASSES), rtol=1e-7, atol=1e-10)
