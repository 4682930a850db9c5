"""Etmann et al. (2019): how well the saliency map aligns with the image, and how far the image is
from the decision boundary, linearized and empirically. Batched; Psi = logits, i* = predicted class.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attacks import get_attack
from .saliency import logit_gradient


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1)


def alignment(model: nn.Module, x: torch.Tensor, *, cosine: bool = False) -> torch.Tensor:
    """alpha(x) = |<x, grad Psi_i*(x)>| / ||grad Psi_i*(x)||; cosine=True also divides by ||x||."""
    g = _flat(logit_gradient(model, x))
    xf = _flat(x.detach())
    value = (xf * g).sum(1).abs() / g.norm(dim=1).clamp_min(1e-12)
    return value / xf.norm(dim=1).clamp_min(1e-12) if cosine else value


def linearized_robustness(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """rho~(x) = min_{j != i*} (Psi_i* - Psi_j) / ||grad Psi_i* - grad Psi_j||: the distance to the
    nearest decision boundary of the first-order Taylor model at x."""
    with torch.no_grad():
        logits = model(x)
    k = logits.shape[1]
    pred = logits.argmax(1)
    grads = torch.stack([_flat(logit_gradient(model, x, c)) for c in range(k)], dim=1)   # (N, K, D)
    rows = torch.arange(len(x), device=x.device)
    gap = logits[rows, pred][:, None] - logits                                           # (N, K)
    dist = gap / (grads[rows, pred][:, None] - grads).norm(dim=2).clamp_min(1e-12)
    dist[rows, pred] = float("inf")
    return dist.amin(1)


@dataclass
class EmpiricalRobustness:
    """rho(x): the smallest successful L2 perturbation over the attacks (inf where none worked)."""

    rho: torch.Tensor                   # (N,), inf where every attack failed
    by_attack: dict[str, torch.Tensor]  # per attack, inf where it failed
    n_failed: int                       # images no attack moved off the predicted class

    def finite(self) -> torch.Tensor:
        return self.rho[torch.isfinite(self.rho)]


def empirical_robustness(model: nn.Module, x: torch.Tensor,
                         attacks: dict[str, dict] | None = None) -> EmpiricalRobustness:
    """Run minimum-norm attacks (default DeepFool and CW-L2) against the *predicted* class."""
    attacks = {"deepfool": {}, "cw_l2": {}} if attacks is None else attacks
    with torch.no_grad():
        pred = model(x).argmax(1)
    by_attack = {}
    for name, params in attacks.items():
        res = get_attack(name)(model, x, pred, **params)
        l2 = res.norms["l2"].clone()
        l2[~res.success] = float("inf")
        by_attack[name] = l2
    rho = torch.stack(list(by_attack.values())).amin(0)
    return EmpiricalRobustness(rho, by_attack, int((~torch.isfinite(rho)).sum()))
