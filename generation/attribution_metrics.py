"""Comparing two saliency maps (Chen et al. 2019) and CAM interpretation discrepancy (Boopathy et
al. 2020). Maps are compared per example, flattened; batched over the first dimension."""
from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torch import nn

from .saliency import cam


def _rows(a: torch.Tensor) -> np.ndarray:
    return a.detach().flatten(1).cpu().double().numpy()


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Kendall's tau-b between the pixel rankings of each pair of maps, (N,)."""
    return torch.tensor([stats.kendalltau(u, v).statistic for u, v in zip(_rows(a), _rows(b), strict=True)])


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation between each pair of maps, (N,)."""
    return torch.tensor([stats.spearmanr(u, v).statistic for u, v in zip(_rows(a), _rows(b), strict=True)])


def top_k_mask(a: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask (N, D) of the k largest entries of each flattened map."""
    flat = a.detach().flatten(1)
    if not 0 < k <= flat.shape[1]:
        raise ValueError(f"k must be in 1..{flat.shape[1]}, got {k}")
    mask = torch.zeros_like(flat, dtype=torch.bool)
    return mask.scatter_(1, flat.topk(k, dim=1).indices, True)


def top_k_intersection(a: torch.Tensor, b: torch.Tensor, k: int = 100) -> torch.Tensor:
    """Fraction of the k most salient pixels of a that are also among the k most salient of b."""
    return (top_k_mask(a, k) & top_k_mask(b, k)).sum(1).float() / k


def cam_top_k_intersection(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, classes: torch.Tensor,
                           k: int = 8) -> torch.Tensor:
    """Boopathy et al.'s top-k CAM intersection per example, (N,): the fraction of the k largest cells of
    the clean image's CAM of `classes` (signed, as their tf.nn.top_k takes it) that are also among the k
    largest of the attacked image's CAM of the same class."""
    with torch.no_grad():
        return top_k_intersection(cam(model, x, classes), cam(model, x_adv, classes), k)


def cam_discrepancy(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                    target: torch.Tensor | None = None) -> torch.Tensor:
    """Boopathy et al.'s l1 interpretation discrepancy per example, divided by the map's H*W:
    two-class 1/2(||I(x,y) - I(x',y)||_1 + ||I(x,t) - I(x',t)||_1), or with target None the
    one-class ||I(x,y) - I(x',y)||_1. I = CAM of a GAP-head model."""
    with torch.no_grad():
        maps_y = cam(model, x, y) - cam(model, x_adv, y)
        area = maps_y.shape[-1] * maps_y.shape[-2]
        d = maps_y.abs().flatten(1).sum(1)
        if target is not None:
            d = 0.5 * (d + (cam(model, x, target) - cam(model, x_adv, target)).abs().flatten(1).sum(1))
    return d / area


def cam_size(model: nn.Module, x: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Mean |CAM_c(x)| over the map's cells, (N,): the scale a discrepancy is divided by so a model
    with small logits does not look robust for that reason alone."""
    with torch.no_grad():
        return cam(model, x, classes).abs().flatten(1).mean(1)


def logit_margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Boopathy et al.'s classification margin 1/2 (f_y(x) - f_t(x)), in the same logit units as the
    discrepancy, reported beside it."""
    with torch.no_grad():
        logits = model(x)
    return 0.5 * (logits.gather(1, y[:, None]) - logits.gather(1, target[:, None])).squeeze(1)
