"""Shared pieces of every attack: the result type, norms, success, loss gradients, seeding."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import exact_fp32


@dataclass
class AttackResult:
    """Adversarial images in [0,1], a success mask and per-example perturbation norms."""

    images: torch.Tensor
    success: torch.Tensor                       # bool (B,)
    norms: dict[str, torch.Tensor]              # l2, linf, l0 of (images - x), each (B,)
    budget: torch.Tensor | None = None          # until-success: smallest budget that worked (nan = none)


@exact_fp32
def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
    delta = (x_adv - x).flatten(1)
    return {
        "l2": delta.norm(p=2, dim=1),
        "linf": delta.abs().amax(dim=1),
        "l0": (delta.abs() > 1e-6).sum(dim=1).to(x.dtype),
    }


@exact_fp32
@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(dim=1)


def success_mask(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor,
                 target: torch.Tensor | None) -> torch.Tensor:
    """Targeted: the model predicts the target. Untargeted: it no longer predicts y."""
    pred = predict(model, x_adv)
    return pred == target if target is not None else pred != y


@exact_fp32
def finish(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
           target: torch.Tensor | None) -> AttackResult:
    x_adv = x_adv.detach()
    return AttackResult(images=x_adv, success=success_mask(model, x_adv, y, target),
                        norms=perturbation_norms(x, x_adv))


def loss_gradient(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """d CE(model(x), labels) / dx, summed over the batch so each row is its own example's gradient.

    Only the input gradient is requested, so autograd skips the weight gradients.

    Under bf16 autocast the logits are bf16; the loss is taken in fp32, and the gradient comes back
    in x's dtype (fp32), so sign/normalisation steps see fp32 numbers.
    """
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def ascent_direction(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     target: torch.Tensor | None) -> torch.Tensor:
    """Gradient to *add* to x: up the loss of y (untargeted) or down the loss of the target."""
    if target is None:
        return loss_gradient(model, x, y)
    return -loss_gradient(model, x, target)


def generator(seed: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def default_target(y: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """The paper's plotting target: (y + 1) mod K."""
    return (y + 1) % num_classes
