"""DeepFool (Moosavi-Dezfooli et al. 2016), L2, batched: a minimum-norm attack.

Each step linearizes the classifier at the current point and moves to the nearest linearized
decision boundary inside the [0,1] box (times 1 + overshoot); an image stops moving as soon as it is misclassified
(untargeted) or predicted as the target. Used for the empirical robustness rho(x) of Etmann et al.
"""
from __future__ import annotations

import torch
from torch import nn

from ..precision import exact_fp32
from .base import AttackResult, finish


def class_jacobian(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and their input gradients (B, K, *x.shape[1:]), one backward pass per class."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    k = logits.shape[1]
    grads = [torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < k - 1)[0] for c in range(k)]
    return logits.detach(), torch.stack(grads, dim=1)


# Minimum-norm: its answer is the decision boundary itself, which bf16 logits blur (measured:
# DeepFool's success fell from 1.0 to 0.875 under bf16), so it always runs in fp32.
@exact_fp32
def deepfool(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None = None,
             steps: int = 50, overshoot: float = 0.02) -> AttackResult:
    """Untargeted: leave class y by the nearest linearized boundary. Targeted: cross the boundary
    to `target` only. Pass the model's own prediction as y to measure the distance to its boundary."""
    x = x.detach()
    x_adv = x.clone()
    active = torch.ones(len(x), dtype=torch.bool, device=x.device)
    rows = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        idx = active.nonzero().flatten()
        if idx.numel() == 0:
            break
        logits, jac = class_jacobian(model, x_adv[idx])
        pred = logits.argmax(1)
        done = pred == target[idx] if target is not None else pred != y[idx]
        active[idx[done]] = False
        keep = ~done
        idx, logits, jac = idx[keep], logits[keep], jac[keep]
        if idx.numel() == 0:
            break
        r = rows[: len(idx)]
        orig = y[idx]
        f = logits - logits[r, orig][:, None]                      # (b, K): f_k - f_orig
        w = jac - jac[r, orig][:, None]                            # (b, K, ...)
        # Box-aware linearization: a pixel already at 0 (1) cannot move further down (up), so it
        # drops out of the direction; plain DeepFool's step would be clipped away and stall there.
        here = x_adv[idx][:, None]
        w = w * ~(((here <= 0) & (w < 0)) | ((here >= 1) & (w > 0)))
        w_norm = w.flatten(2).norm(dim=2)                          # (b, K)
        if target is None:
            dist = f.abs() / w_norm.clamp_min(1e-12)
            dist[r, orig] = float("inf")
            nearest = dist.argmin(1)
        else:
            nearest = target[idx]
        f_l, w_l, n_l = f[r, nearest], w[r, nearest], w_norm[r, nearest].clamp_min(1e-12)
        step = (f_l.abs() / n_l.pow(2)).view(-1, *([1] * (x.dim() - 1))) * w_l
        x_adv[idx] = (x_adv[idx] + (1 + overshoot) * step).clamp(0, 1)
    return finish(model, x, x_adv, y, target)
