"""Etmann's alignment and robustness, Chen's rank metrics and Boopathy's CAM discrepancy on cases
with known answers."""
import pytest
import torch
from torch import nn

from advlegit.generation.alignment import alignment, empirical_robustness, linearized_robustness
from advlegit.generation.attribution_metrics import cam_discrepancy, kendall_tau, spearman, top_k_intersection
from advlegit.generation.models import GapCNN
from advlegit.generation.saliency import cam


def _linear(seed=0, bias=True, k=10):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, k, bias=bias)).eval()
    with torch.no_grad():
        model[1].weight.mul_(0.3)
    return model


def _images(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 0.4 + 0.2 * torch.rand(n, 1, 28, 28, generator=g)   # away from the [0,1] box


def test_linear_model_closed_forms():
    model, x = _linear(), _images()
    W, b = model[1].weight, model[1].bias
    logits = x.flatten(1) @ W.T + b
    pred = logits.argmax(1)
    w = W[pred]
    expected_alpha = (x.flatten(1) * w).sum(1).abs() / w.norm(dim=1)
    assert torch.allclose(alignment(model, x), expected_alpha, rtol=1e-5)
    assert torch.allclose(alignment(model, x, cosine=True), expected_alpha / x.flatten(1).norm(dim=1), rtol=1e-5)
    # rho~ of a linear model is its exact distance to the nearest decision boundary
    dist = (logits.gather(1, pred[:, None]) - logits) / (w[:, None] - W[None]).norm(dim=2)
    dist[torch.arange(len(x)), pred] = float("inf")
    rho_tilde = linearized_robustness(model, x)
    assert torch.allclose(rho_tilde, dist.amin(1), rtol=1e-5)
    # and the minimum-norm attacks find (about) that distance: DeepFool lands there times 1.02
    emp = empirical_robustness(model, x, {"deepfool": {}, "cw_l2": {"steps": 50, "lr": 0.01}})
    assert emp.n_failed == 0
    assert torch.all(emp.rho >= rho_tilde * 0.999) and torch.all(emp.rho <= rho_tilde * 1.03)


def test_binary_bias_free_linear_model_alignment_equals_robustness():
    model, x = _linear(bias=False, k=1), _images()
    two_class = nn.Sequential(model, _Concat()).eval()        # logits (w.x, -w.x)
    assert torch.allclose(alignment(two_class, x), linearized_robustness(two_class, x), rtol=1e-4, atol=1e-6)


class _Concat(nn.Module):
    def forward(self, z):
        return torch.cat([z, -z], dim=1)


def test_alignment_of_a_bias_free_relu_network_is_logit_over_gradient_norm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64, bias=False), nn.ReLU(),
                          nn.Linear(64, 64, bias=False), nn.ReLU(), nn.Linear(64, 10, bias=False)).eval()
    x = torch.rand(16, 1, 28, 28)
    x_ = x.clone().requires_grad_(True)
    logits = model(x_)
    top = logits.max(1).values
    (g,) = torch.autograd.grad(top.sum(), x_)
    assert torch.allclose(alignment(model, x), top.detach().abs() / g.flatten(1).norm(dim=1), rtol=1e-4)


def test_empirical_robustness_counts_images_no_attack_moved():
    model, x = _linear(), _images()
    emp = empirical_robustness(model, x, {"deepfool": {"steps": 0}})
    assert emp.n_failed == len(x) and torch.isinf(emp.rho).all() and emp.finite().numel() == 0


def test_rank_metrics_on_known_vectors():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
    assert kendall_tau(a, b).tolist() == pytest.approx([2 / 3, -1.0])
    assert spearman(a, b).tolist() == pytest.approx([0.8, -1.0])
    u = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    v = torch.tensor([[0.0, 4.0, 5.0, 1.0, 2.0, 3.0]])
    assert top_k_intersection(u, v, k=2).item() == pytest.approx(0.5)
    assert top_k_intersection(u, v, k=3).item() == pytest.approx(2 / 3)
    assert top_k_intersection(u, u, k=3).item() == 1.0
    with pytest.raises(ValueError):
        top_k_intersection(u, v, k=7)


def test_cam_discrepancy_one_and_two_class():
    torch.manual_seed(0)
    model = GapCNN(width=0.25).eval()
    x = torch.rand(4, 1, 28, 28)
    x_adv = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    y, t = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 6, 7, 8])
    assert torch.allclose(cam_discrepancy(model, x, x, y, t), torch.zeros(4))
    with torch.no_grad():
        d_y = (cam(model, x, y) - cam(model, x_adv, y)).abs().mean(dim=(1, 2))
        d_t = (cam(model, x, t) - cam(model, x_adv, t)).abs().mean(dim=(1, 2))
    assert torch.allclose(cam_discrepancy(model, x, x_adv, y), d_y, rtol=1e-5)
    assert torch.allclose(cam_discrepancy(model, x, x_adv, y, t), (d_y + d_t) / 2, rtol=1e-5)
    assert torch.all(d_y > 0)
