"""Boopathy et al.'s top-k CAM intersection: the metric, their attack on the CAM's top-k cells, and the
optional report in the interpretability results (off by default: results and cache keys unchanged)."""
from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch
from torch import nn

from advlegit.generation.attacks.base import generator
from advlegit.generation.attribution_metrics import cam_top_k_intersection
from advlegit.generation.cam_attack import cam_top_k_attack
from advlegit.generation.config import ConfigError, InterpretabilityConfig, from_dict
from advlegit.generation.interpretability import evaluate_model
from advlegit.generation.models import build_model
from advlegit.generation.pipeline import interpretability_key


class ImageIsCam(nn.Module):
    """A GAP-head model whose feature map is the one-channel image: CAM_0 = x, CAM_1 = -x."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.mean(dim=(2, 3)))


def test_exact_value_on_a_hand_made_cam_pair():
    a = torch.arange(16.0) - 12              # top 3 (signed): cells 15, 14, 13; largest |.|: cells 0, 1, 2
    b = a.clone()
    b[[0, 13]] = b[[13, 0]]                  # cell 13 leaves the top 3 (signed), cell 0 enters
    x, x_adv = a.view(1, 1, 4, 4), b.view(1, 1, 4, 4)
    model = ImageIsCam()
    assert cam_top_k_intersection(model, x, x_adv, torch.tensor([0]), k=3).item() == pytest.approx(2 / 3)
    assert cam_top_k_intersection(model, x, x_adv, torch.tensor([0]), k=2).item() == 1.0
    # class 1's CAM is -x: its top 3 are cells 0, 1, 2 of x and 13, 1, 2 of x'
    assert cam_top_k_intersection(model, x, x_adv, torch.tensor([1]), k=3).item() == pytest.approx(2 / 3)
    b[[1, 14]] = b[[14, 1]]                  # now 14 leaves the signed top 3 too
    assert cam_top_k_intersection(model, x, b.view(1, 1, 4, 4), torch.tensor([0]), k=3).item() == pytest.approx(1 / 3)


def test_identical_images_give_one():
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(cam_top_k_intersection(model, x, x.clone(), torch.arange(5)), torch.ones(5))
    # at epsilon 0 their attack cannot move the image
    x0 = cam_top_k_attack(model, x, torch.arange(5), epsilon=0.0, steps=3)
    assert torch.equal(x0, x)


def test_k_outside_the_map_is_a_clear_error():
    model = ImageIsCam()
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="k must be in 1..16"):
        cam_top_k_intersection(model, x, x, torch.tensor([0]), k=17)


# --- their code, transcribed (AkhilanB/Proper-Interpretability eval.py), independent of ours -------------

def their_cams(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """load_model.predict: cam = conv2d(last conv output, W) with a 1x1 kernel, (N, h, w, K)."""
    with torch.no_grad():
        feats = model.feature_maps(x).permute(0, 2, 3, 1).double().numpy()
    return feats @ model.linear.weight.detach().double().numpy().T


def their_intr_topk(cam_a: np.ndarray, cam_b: np.ndarray, k: int) -> float:
    """intr_topk's intersection of two (N, h, w) maps. Theirs partitions each row but then takes row -k
    (`np.partition(cam, -k)[-k]`), which raises unless N == h*w; here the k-th largest of each row.
    Kept as theirs: strictly larger than the k-th largest (so k - 1 cells), divided by h*w (not k)."""
    a, b = cam_a.reshape(len(cam_a), -1), cam_b.reshape(len(cam_b), -1)
    a_kth = np.partition(a, -k, axis=1)[:, -k][:, np.newaxis]
    b_kth = np.partition(b, -k, axis=1)[:, -k][:, np.newaxis]
    a_top, b_top = np.where(a > a_kth, 1, 0), np.where(b > b_kth, 1, 0)
    return float(np.mean(np.sum(a_top * b_top, axis=1)) / a_top.shape[1])


def their_aai_topk_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor, eps: float,
                          k: int, steps: int) -> torch.Tensor:
    """aai_topk's loop (CAM branch): tf.nn.top_k indices of the clean true-class CAM, loss =
    -mean(sum of the attacked CAM at those indices), x' += 0.01 sign(grad), clip to the ball, to [0, 1]."""
    w = model.linear.weight.detach()
    with torch.no_grad():
        true_idx = (w[y][:, :, None, None] * model.feature_maps(x)).sum(1).flatten(1).topk(k).indices
    x_adv = start.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        cam_true_adv = (w[y][:, :, None, None] * model.feature_maps(x_adv)).sum(1).flatten(1)
        loss = -cam_true_adv.gather(1, true_idx).sum(1).mean()
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + 0.01 * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv


def test_equals_their_computation_on_a_tiny_gap_model(mnist):
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x, y = mnist["test"][0][:16], mnist["test"][1][:16]
    eps, k, steps, seed = 0.2, 8, 20, 5
    ours = cam_top_k_attack(model, x, y, epsilon=eps, k=k, steps=steps, step_size=0.01, seed=seed)
    noise = torch.rand(x.shape, generator=generator(seed, x.device), dtype=x.dtype)
    start = (x + (2 * noise - 1) * eps).clamp(0, 1)  # their start: x + U(-eps, eps), clipped
    theirs = their_aai_topk_images(model, x, y, start, eps, k, steps)
    assert (ours - theirs).abs().max().item() < 1e-5
    assert (ours - x).abs().max().item() <= eps + 1e-6 and not torch.equal(ours, x)

    cams, cams_adv = their_cams(model, x), their_cams(model, ours)
    idx = np.arange(len(y))
    clean_true, adv_true = cams[idx, :, :, y.numpy()], cams_adv[idx, :, :, y.numpy()]
    area = clean_true.shape[1] * clean_true.shape[2]
    mine = cam_top_k_intersection(model, x, ours, y, k)
    # their strict "> k-th largest" keeps k - 1 cells and divides by h*w: at k + 1 it is our count at k
    assert mine.mean().item() * k == pytest.approx(their_intr_topk(clean_true, adv_true, k + 1) * area, abs=1e-6)
    assert mine.mean().item() < 1.0  # the attack moved some of the top cells (else this test proves little)


# --- reported only when enabled --------------------------------------------------------------------------

def _cheap(**over) -> InterpretabilityConfig:
    return InterpretabilityConfig(enabled=True, alignment=False, robustness_attacks=[], attribution_attack=False,
                                  pgd_steps=2, cam_attack_steps=2, cam_search_rounds=2, **over)


def test_disabled_by_default_leaves_the_results_and_the_cache_key_unchanged(mnist):
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x, y = mnist["test"][0][:8], mnist["test"][1][:8]
    assert InterpretabilityConfig().cam_top_k is False
    off = evaluate_model(model, x, y, _cheap())
    on = evaluate_model(model, x, y, _cheap(cam_top_k=True, cam_top_k_epsilons=[0.0, 0.3], cam_top_k_steps=5))
    assert "cam_top_k" not in off
    top = on.pop("cam_top_k")
    assert on == off  # nothing else moves when it is on
    assert top["k"] == 8 and top["attack"] == "top_k_cam" and [r["epsilon"] for r in top["by_epsilon"]] == [0.0, 0.3]
    at0, at3 = top["by_epsilon"]
    assert at0["n_kept"] == 8 and at0["top_k_intersection"] == 1.0 and at0["kendall_tau"] == pytest.approx(1.0)
    assert at3["top_k_intersection_all"] < 1.0

    key = interpretability_key(InterpretabilityConfig())
    before = {k: v for k, v in asdict(InterpretabilityConfig()).items()
              if not k.startswith("cam_top_k") and k not in ("enabled", "methods", "grid_images", "export_saliency")}
    assert key == before  # the key of results cached before cam_top_k existed
    enabled = interpretability_key(InterpretabilityConfig(cam_top_k=True))
    assert enabled["cam_top_k_k"] == 8 and enabled["cam_top_k_steps"] == 200 and enabled != key


def test_pgd_can_produce_x_adv_instead(mnist):
    torch.manual_seed(0)
    model = build_model("gap_cnn", width=0.25).eval()
    x, y = mnist["test"][0][:4], mnist["test"][1][:4]
    r = evaluate_model(model, x, y, _cheap(cam_top_k=True, cam_top_k_attack="pgd", cam_top_k_epsilons=[0.3],
                                           cam_top_k_steps=3))
    assert r["cam_top_k"]["attack"] == "pgd" and r["cam_top_k"]["by_epsilon"][0]["n_kept"] <= 4


@pytest.mark.parametrize("table, message", [
    ({"cam_top_k_epsilons": [0.1, 1.5]}, "must lie in"),
    ({"cam_top_k_epsilons": [0.1, 0.1]}, "twice"),
    ({"cam_top_k": True, "cam_top_k_epsilons": []}, "must not be empty"),
    ({"cam_top_k_attack": "fgsm"}, "cam_top_k_attack"),
])
def test_bad_settings_are_refused(table, message):
    with pytest.raises(ConfigError, match=message):
        from_dict({"interpretability": table})


def test_the_table_and_the_per_seed_metrics_take_the_largest_epsilon():
    from advlegit.generation.interpretability_report import seed_metrics, table_rows

    base = {"natural_accuracy": 0.9, "pgd_accuracy": 0.1, "per_image": {}}
    top = {"k": 8, "by_epsilon": [{"epsilon": 0.0, "top_k_intersection": 1.0, "kendall_tau": 1.0},
                                  {"epsilon": 0.4, "top_k_intersection": 0.25, "kendall_tau": 0.1},
                                  {"epsilon": 0.2, "top_k_intersection": 0.5, "kendall_tau": 0.3}]}
    interp = {"n_images": 4, "models": {"int": {**base, "cam_top_k": top}, "normal": base}}
    rows = {r["model"]: r for r in table_rows(interp, {})}
    assert (rows["int"]["cam_top_k_epsilon"], rows["int"]["cam_top_k_intersection"],
            rows["int"]["cam_top_k_kendall_tau"]) == (0.4, 0.25, 0.1)
    assert rows["normal"]["cam_top_k_intersection"] is None
    per_seed = seed_metrics(interp)
    assert per_seed["int"]["cam_top_k_intersection"] == 0.25 and "cam_top_k_epsilon" not in per_seed["int"]
