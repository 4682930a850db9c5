"""Attribution terms of the interpretability-regularized defenses, differentiable for training:
Chen et al.'s ||IG(x -> x')||_1 of the loss and Boopathy et al.'s CAM discrepancy."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..saliency import cam_all_classes, path_integrated_gradients, per_example_loss


def ig_l1(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, steps: int) -> torch.Tensor:
    """Per-example ||IG(x -> x_adv)||_1 of the cross-entropy (Chen et al.'s regularizer), right
    Riemann sum with `steps` points (a_k = k/m, as their code). Differentiable (create_graph) for
    the weights and for x_adv when it requires grad. In train mode with dropout every path point
    draws its own mask (an unbiased but noisier sum); Chen et al.'s network had no dropout."""
    ig = path_integrated_gradients(per_example_loss(model, y), x, x_adv, steps=steps, create_graph=True)
    return ig.abs().flatten(1).sum(dim=1)


def require_gap_head(model: nn.Module, defense: str) -> None:
    if not (hasattr(model, "feature_maps") and isinstance(getattr(model, "linear", None), nn.Linear)):
        raise ValueError(f"defense {defense!r} regularizes class activation maps and needs a model with a "
                         f"global-average-pooling head (feature_maps and linear): set "
                         f'architecture = "gap_cnn" for it (got {type(model).__name__})')


def cam_discrepancy(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                    clean_cams: torch.Tensor | None = None, one_class: bool = False) -> torch.Tensor:
    """Boopathy et al.'s Int regularizer per example, as their code computes it:

        ||CAM_y(x') - CAM_y(x)||_1 + sum_{c != y} p~_c ||CAM_c(x') - CAM_c(x)||_1,

    p~ = softmax(f(x')) with the true class zeroed and renormalized over the others (kept in the
    graph, as theirs). L1 norms are sums over the CAM's h*w cells, not divided by h*w.
    `clean_cams` (the CAMs of x, detached) saves a pass per step inside an attack, where x is fixed.
    `one_class` keeps only the true class's term (their "intone" variant).
    """
    cams_adv, logits_adv = cam_all_classes(model, x_adv)
    cams = cam_all_classes(model, x)[0] if clean_cams is None else clean_cams
    diff = (cams_adv - cams).abs().flatten(2).sum(dim=2)               # (N, K)
    true = F.one_hot(y, diff.shape[1]).to(diff.dtype)
    if one_class:
        return (diff * true).sum(dim=1)
    others = F.softmax(logits_adv, dim=1) * (1 - true)
    others = others / others.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return (diff * true).sum(dim=1) + (diff * others).sum(dim=1)
