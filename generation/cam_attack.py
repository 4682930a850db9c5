"""Boopathy et al.'s evaluation of the CAM discrepancy: a targeted minimum-epsilon attack.

For each image a random target t != y is drawn; the attack is a targeted L-inf attack on the margin
max_{c != t} f_c(x') - f_t(x') (clipped below at -kappa), run at a per-image epsilon that a search
shrinks after a success and grows after a failure. The discrepancy is then measured at the smallest
epsilon found, and reported beside the clean margin 1/2 (f_y(x) - f_t(x)) in the same logit units,
as in the paper's code (min_pgd_attack in AkhilanB/Proper-Interpretability's eval.py):
- search: epsilon starts at 0.05 in [0, 1]; after a success the upper end moves down and epsilon
  goes to the middle; after a failure the lower end moves up and epsilon doubles (at most to the
  middle); `rounds` rounds; the final attack runs at the upper end (the smallest success).
- attack: `steps` steps from x itself (no random start) of 0.2 * eps * clip(1000 * grad, -1, 1),
  projected onto the eps-ball and [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attacks.base import generator
from .attribution_metrics import top_k_mask
from .saliency import cam

START_EPSILON = 0.05   # the paper's first epsilon
KAPPA = 0.1            # the margin is clipped at -kappa: no push past a confident success
STEP_FRACTION = 0.2    # each step moves at most 0.2 * eps per pixel


@dataclass
class MinEpsilonResult:
    images: torch.Tensor     # the attack at each image's smallest successful epsilon (max_epsilon if none)
    target: torch.Tensor     # the random target class of each image
    epsilon: torch.Tensor    # the smallest successful epsilon found; nan where the final attack failed
    success: torch.Tensor    # the final image is classified as the target


def random_targets(y: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """t = (y + 1 + U{0..K-2}) mod K: uniform over the classes other than y (the paper's draw)."""
    g = torch.Generator().manual_seed(int(seed))
    shift = torch.randint(num_classes - 1, (len(y),), generator=g).to(y.device)
    return (y + 1 + shift) % num_classes


def target_margin(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """max_{c != t} f_c - f_t per image: negative when the model predicts the target."""
    f_t = logits.gather(1, target[:, None]).squeeze(1)
    others = logits.scatter(1, target[:, None], float("-inf"))
    return others.amax(1) - f_t


def _attack(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: torch.Tensor, steps: int) -> torch.Tensor:
    e = eps.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = target_margin(model(x_adv).float(), target).clamp_min(-KAPPA).sum()
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() - STEP_FRACTION * (1000 * grad).clamp(-1, 1) * e
        x_adv = torch.min(torch.max(x_adv, x - e), x + e).clamp(0, 1)
    return x_adv.detach()


def _hits(model: nn.Module, x_adv: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return target_margin(model(x_adv).float(), target) < 0


def targeted_min_epsilon(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *, steps: int = 10,
                         rounds: int = 10, max_epsilon: float = 1.0) -> MinEpsilonResult:
    """The smallest epsilon (to the search's resolution) at which the targeted attack reaches `target`."""
    x = x.detach()
    n = len(x)
    eps = torch.full((n,), min(START_EPSILON, max_epsilon), dtype=torch.float64, device=x.device)
    low = torch.zeros_like(eps)
    high = torch.full_like(eps, max_epsilon)
    for _ in range(rounds):
        won = _hits(model, _attack(model, x, target, eps, steps), target)
        high = torch.where(won, eps, high)
        low = torch.where(won, low, eps)
        eps = torch.where(won, (low + high) / 2, torch.minimum(2 * eps, (low + high) / 2))
    images = _attack(model, x, target, high, steps)
    success = _hits(model, images, target)
    # the upper end is the smallest success (or max_epsilon, tried last when the search never got there)
    return MinEpsilonResult(images, target, torch.where(success, high, torch.full_like(high, float("nan"))), success)


def cam_top_k_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epsilon: float, k: int = 8,
                     steps: int = 200, step_size: float = 0.01, seed: int = 0) -> torch.Tensor:
    """Boopathy et al.'s top-k attack on the CAM (aai_topk in their eval.py, after Ghorbani et al.):
    from a uniform random start in the L-inf eps-ball, `steps` sign steps that lower the true class's
    CAM on the k cells where the clean image's CAM of that class is largest, projected onto the ball
    and [0, 1]. The prediction is free to change (they filter such images when they report)."""
    x = x.detach()
    with torch.no_grad():
        top = top_k_mask(cam(model, x, y), k).to(x.dtype)
    noise = torch.rand(x.shape, generator=generator(seed, x.device), device=x.device, dtype=x.dtype)
    x_adv = (x + (2 * noise - 1) * epsilon).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = -(cam(model, x_adv, y).flatten(1) * top).sum()
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - epsilon), x + epsilon).clamp(0, 1)
    return x_adv.detach()
