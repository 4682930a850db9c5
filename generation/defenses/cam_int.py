"""Int (Boopathy, Liu, Zhang, Liu, Chen, Chang, Daniel, "Proper Network Interpretability Helps
Adversarial Robustness in Classification", ICML 2020): interpretability-aware robust training.

    L = CE(x) + gamma * mean_i D_i(x, x'),
    D = ||CAM_y(x') - CAM_y(x)||_1 + sum_{c != y} p~_c ||CAM_c(x') - CAM_c(x)||_1,

p~ = softmax(f(x')) over the classes other than y (renormalized), L1 over the CAM cells without
dividing by h*w, mean over the batch -- all as their code (AkhilanB/Proper-Interpretability,
train.py `train_int`). x' is found by PGD with a random start that *maximizes D* (their attack
ascends the gradient of the whole loss with respect to x', i.e. of gamma * D; we ascend D, the same
direction for gamma > 0). `adversarial_ce = true` gives their Int-Adv variant (CE at x').

eps schedule as the paper's: 0 for the first `ramp_start` of training (the paper's 2k of 10k
steps = 0.2), then linear to eps at `ramp_end` (1.0); while eps is 0 the attack is skipped and D = 0.
Needs a GAP-head model: set architecture = "gap_cnn" for this defense.

Paper (MNIST): gamma = 0.01, eps = 0.3, PGD 40 x 0.01, batch 50, Adam 1e-4.
CPU-scaled defaults: PGD 10 x 0.075 (steps of 2.5 eps / 10).
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


@dataclass
class CamIntParams:
    gamma: float = 0.01  # weight of the CAM discrepancy (paper: 0.01)
    epsilon: float = 0.3  # L-inf radius of the PGD point x' (paper MNIST: 0.3, ramped)
    steps: int = 10             # paper 40
    step_size: float = 0.075    # paper 0.01
    ramp_start: float = 0.2     # eps = 0 before this fraction of training (paper: 2k of 10k steps)
    ramp_end: float = 1.0       # eps reaches its value here
    adversarial_ce: bool = False  # Int-Adv: CE at x' instead of x

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

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """x' maximizing the CAM discrepancy D."""
        with eval_mode(model), torch.no_grad():
            clean_cams = cam_all_classes(model, x)[0]
        return self.inner_max(model, x, lambda z: cam_discrepancy(model, x, z, y, clean_cams).sum(), step)

    def loss_at(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(model(x_adv if self.params.adversarial_ce else x), y)
        if self.params.gamma == 0:
            return ce
        return ce + self.params.gamma * cam_discrepancy(model, x, x_adv, y).mean()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        require_gap_head(model, self.name)
        return self.loss_at(model, x, self.attack(model, x, y, step), y)
