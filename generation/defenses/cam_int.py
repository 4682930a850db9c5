"""Int (Boopathy, Liu, Zhang, Liu, Chen, Chang, Daniel, "Proper Network Interpretability Helps
Adversarial Robustness in Classification", ICML 2020): interpretability-aware robust training.

    L = CE(x) + gamma * mean_i D_i(x, x'),
    D = ||CAM_y(x') - CAM_y(x)||_1 + sum_{c != y} p~_c ||CAM_c(x') - CAM_c(x)||_1,

p~ = softmax(f(x')) over the classes other than y (renormalized), L1 over the CAM cells without
dividing by h*w, mean over the batch -- all as their code (AkhilanB/Proper-Interpretability,
train.py `train_int`). x' is found by PGD with a random start that ascends the gradient of the
whole loss with respect to x', as their attack does: for Int that is gamma * D (CE(x) does not
depend on x'), so we ascend D; for Int-Adv (`adversarial_ce = true`, CE at x') it is
CE(x') + gamma * D. `one_class = true` keeps only the true class's term of D (their "intone").

eps schedule as the paper's: 0 until `ramp_start` of training, linear to eps at `ramp_end`, then
constant. Their MNIST run is 110k steps (100 epochs x 1,100) with the ramp from step 2k to 10k, so
the defaults are 2/110 and 10/110 (mean eps over training ~0.945 eps). While eps is 0 the attack is
skipped and D = 0. Needs a GAP-head model: set architecture = "gap_cnn" for this defense.

Paper (MNIST): gamma = 0.01, eps = 0.3, PGD 40 x 0.01, batch 50, Adam 1e-4 -- the defaults.
Short CPU runs collapse to chance with the paper's early ramp (the audit's 200-step run did);
examples/mnist-interpretability.toml sets ramp_start = 0.2, ramp_end = 1.0 and a short PGD.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..saliency import cam_all_classes
from .attribution_terms import cam_discrepancy, require_gap_head
from .base import Defense, TrainContext
from .inner_max import InnerMaximizer, check_fraction, check_pgd, delayed_ramp, eval_mode

PAPER_STEPS = 110_000  # Boopathy et al.'s MNIST training length; the ramp runs from 2k to 10k of it


@dataclass
class CamIntParams:
    gamma: float = 0.01  # weight of the CAM discrepancy (paper: 0.01)
    epsilon: float = 0.3  # L-inf radius of the PGD point x' (paper MNIST: 0.3, ramped)
    steps: int = 40             # paper 40
    step_size: float = 0.01     # paper 0.01
    ramp_start: float = 2_000 / PAPER_STEPS   # eps = 0 before this fraction of training (paper: step 2k)
    ramp_end: float = 10_000 / PAPER_STEPS    # eps reaches its value here (paper: step 10k), constant after
    adversarial_ce: bool = False  # Int-Adv: CE at x' instead of x (and in the inner maximization)
    one_class: bool = False       # D = ||CAM_y(x') - CAM_y(x)||_1 only (their "intone" variant)

    def __post_init__(self) -> None:
        name = getattr(self, "_defense_name", "int")
        if self.gamma < 0:
            raise ValueError(f"{name}: gamma must be >= 0, got {self.gamma}")
        check_pgd(name, self.epsilon, self.steps, self.step_size)
        check_fraction(name, "ramp_start", self.ramp_start)
        check_fraction(name, "ramp_end", self.ramp_end)
        if self.ramp_end < self.ramp_start:
            raise ValueError(f"{name}: ramp_end ({self.ramp_end}) must not come before ramp_start ({self.ramp_start})")


class CamInt(InnerMaximizer, Defense):
    name = "int"
    Params = CamIntParams
    requires_architecture: ClassVar[str] = "gap_cnn"  # for configs and tests that pick the model

    def prepare(self, ctx: TrainContext) -> None:
        self.total_steps = ctx.total_steps

    def epsilon_at(self, step: int) -> float:
        p = self.params
        return p.epsilon * delayed_ramp(step, getattr(self, "total_steps", 0), p.ramp_start, p.ramp_end)

    def discrepancy(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                    clean_cams: torch.Tensor | None = None) -> torch.Tensor:
        return cam_discrepancy(model, x, x_adv, y, clean_cams, one_class=self.params.one_class)

    def inner_objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        """What their attack ascends: d(loss)/dx'. gamma * D for Int (CE(x) is constant in x'),
        CE(x') + gamma * D for Int-Adv; summed over the batch (each x'_i moves only its own term)."""
        with eval_mode(model), torch.no_grad():
            clean_cams = cam_all_classes(model, x)[0]
        gamma = self.params.gamma
        if not self.params.adversarial_ce:
            return lambda z: self.discrepancy(model, x, z, y, clean_cams).sum()
        return lambda z: (F.cross_entropy(model(z), y, reduction="none")
                          + gamma * self.discrepancy(model, x, z, y, clean_cams)).sum()

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        return self.inner_max(model, x, self.inner_objective(model, x, y), step)

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(model(x_adv if self.params.adversarial_ce else x), y)
        if self.params.gamma == 0:
            return ce
        return ce + self.params.gamma * self.discrepancy(model, x, x_adv, y).mean()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        require_gap_head(model, self.name)
        return self.loss_at(model, x, self.attack(model, x, y, step), y)
