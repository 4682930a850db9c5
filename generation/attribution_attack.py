"""The top-k attribution attack of Ghorbani et al. (2019), as Chen et al. (2019) evaluate with it.

Saliency = |IG| of the predicted logit from a zero baseline. The attack minimizes the share of the
saliency mass that stays on the original top-k pixels, by signed steps inside an L-inf ball.
ReLU networks have zero second derivatives almost everywhere, so the gradient of the saliency is
taken through a copy of the network with every ReLU replaced by softplus(beta). A step after
which the (real) network's label changes is rejected for that image, so the attack changes the
explanation, never the decision. The best of `restarts` runs (lowest top-k intersection on the
real network) is kept; every restart starts from a random label-keeping point. The maps compared before and after use the same `ig_steps`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks.base import generator
from .attribution_metrics import top_k_intersection, top_k_mask
from .saliency import integrated_gradients


def softplus_copy(model: nn.Module, beta: float = 10.0) -> nn.Module:
    """A deep copy of `model` with every nn.ReLU replaced by nn.Softplus(beta): smooth, so the
    second derivatives a saliency loss needs are not zero."""
    smooth = copy.deepcopy(model).eval()
    for name, module in list(smooth.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, child_name, nn.Softplus(beta=beta))
    for p in smooth.parameters():
        p.requires_grad_(False)
    return smooth


def abs_ig(model: nn.Module, x: torch.Tensor, classes: torch.Tensor, steps: int,
           create_graph: bool = False) -> torch.Tensor:
    return integrated_gradients(model, x, classes, steps=steps, create_graph=create_graph).abs()


@dataclass
class AttributionAttackResult:
    images: torch.Tensor            # attacked images, same label as x on the real network
    original_saliency: torch.Tensor  # |IG| at x (real network)
    attacked_saliency: torch.Tensor  # |IG| at the attacked image (real network)
    label_kept: torch.Tensor        # bool (N,): always True by construction, checked by the tests


def top_k_attack(model: nn.Module, x: torch.Tensor, *, epsilon: float = 0.3, steps: int = 100,
                 step_size: float = 0.01, k: int = 200, restarts: int = 3, ig_steps: int = 50,
                 beta: float = 10.0, seed: int = 0) -> AttributionAttackResult:
    x = x.detach()
    with torch.no_grad():
        label = model(x).argmax(1)
    smooth = softplus_copy(model, beta)
    original = abs_ig(model, x, label, ig_steps)
    mask = top_k_mask(original, k).view_as(x).to(x.dtype)
    view = (-1,) + (1,) * (x.dim() - 1)
    best = x.clone()
    best_score = torch.full((len(x),), float("inf"), device=x.device)
    gen = generator(seed, x.device)
    for r in range(restarts):
        # Random start: the first restart only a step_size away (|IG| of a pixel at 0 has zero
        # gradient, and an MNIST digit's IG mass sits entirely on its top-k, so from x itself the
        # loss is flat), later ones anywhere in the ball. A start that changes the label is not used.
        radius = step_size if r == 0 else epsilon
        noise = 2 * torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) - 1
        start = (x + noise * radius).clamp(0, 1)
        with torch.no_grad():
            keeps = model(start).argmax(1) == label
        cur = torch.where(keeps.view(view), start, x)
        for _ in tqdm(range(steps), desc=f"top-k attack {r + 1}/{restarts}", leave=False,
                      dynamic_ncols=True, mininterval=1.0):
            z = cur.clone().requires_grad_(True)
            sal = abs_ig(smooth, z, label, ig_steps, create_graph=True)
            share = (sal * mask).flatten(1).sum(1) / sal.flatten(1).sum(1).clamp_min(1e-12)
            (grad,) = torch.autograd.grad(share.sum(), z)
            cand = torch.min(torch.max(cur - step_size * grad.sign(), x - epsilon), x + epsilon).clamp(0, 1)
            with torch.no_grad():
                keeps = model(cand).argmax(1) == label
            cur = torch.where(keeps.view(view), cand, cur).detach()
        score = top_k_intersection(original, abs_ig(model, cur, label, ig_steps), k)
        better = score < best_score
        best_score = torch.where(better, score, best_score)
        best[better] = cur[better]
    with torch.no_grad():
        kept = model(best).argmax(1) == label
    return AttributionAttackResult(best, original, abs_ig(model, best, label, ig_steps), kept)
