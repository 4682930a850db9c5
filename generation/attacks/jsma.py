"""Jacobian-based saliency map attack (Papernot et al. 2016), batched over images.

Each iteration picks, for every still-running image at once, the pixel pair (p, q) maximizing
-alpha*beta with alpha = sum d Z_t/dx > 0 and beta = sum d(sum_{j!=t} Z_j)/dx < 0 (theta > 0:
increase pixels; theta < 0: mirror), moves both by theta and removes them from the search domain.
An image stops when the model predicts the target or gamma of its pixels have been changed.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import AttackResult, default_target, finish


def _target_and_rest_gradients(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    z_t = logits.gather(1, target[:, None]).sum()
    (g_t,) = torch.autograd.grad(z_t, x, retain_graph=True)
    (g_all,) = torch.autograd.grad(logits.sum(), x)
    return logits.detach(), g_t.flatten(1), (g_all - g_t).flatten(1)


def _best_pairs(a: torch.Tensor, b: torch.Tensor, domain: torch.Tensor, increase: bool):
    """For each image, the pair maximizing -alpha*beta with alpha > 0 > beta (mirrored when
    decreasing). Returns (p, q, found). Written in-place on one (B, N, N) buffer to keep memory
    traffic, which dominates JSMA's cost, low."""
    if not increase:
        a, b = -a, -b
    a = a.masked_fill(~domain, -1e30)      # any pair with a pixel outside the domain gets alpha < 0
    n = a.shape[1]
    alpha = a[:, :, None] + a[:, None, :]
    beta = b[:, :, None] + b[:, None, :]
    valid = (alpha > 0).logical_and_(beta < 0)
    score = alpha.mul_(beta).neg_().mul_(valid)
    score.diagonal(dim1=1, dim2=2).zero_()
    best_score, best = score.flatten(1).max(dim=1)
    return best // n, best % n, best_score > 0


def jsma(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
         theta: float = 1.0, gamma: float = 0.25) -> AttackResult:
    """Jacobian saliency map attack (Papernot et al.), batched: change pixel pairs by theta toward the
    target, at most a gamma share of the pixels."""
    target = default_target(y) if target is None else target
    x = x.detach()
    batch, n_features = x.shape[0], x[0].numel()
    max_iters = int(n_features * gamma) // 2            # two pixels per iteration
    x_adv = x.clone().flatten(1)
    increase = theta > 0
    # Search domain: pixels that can still move in the chosen direction.
    domain = (x_adv < 1) if increase else (x_adv > 0)
    running = torch.ones(batch, dtype=torch.bool, device=x.device)
    for _ in range(max_iters):
        idx = running.nonzero().flatten()
        if idx.numel() == 0:
            break
        cur = x_adv[idx].view(-1, *x.shape[1:])
        logits, a, b = _target_and_rest_gradients(model, cur, target[idx])
        reached = logits.argmax(1) == target[idx]
        p, q, found = _best_pairs(a, b, domain[idx], increase)
        move = found & ~reached
        rows = idx[move]
        for pix in (p[move], q[move]):
            x_adv[rows, pix] = (x_adv[rows, pix] + theta).clamp(0, 1)
            domain[rows, pix] = False
        running[idx[~move]] = False
    return finish(model, x, x_adv.view_as(x), y, target)
