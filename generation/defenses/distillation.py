"""Defensive distillation (Papernot et al. 2016) as Ross & Doshi-Velez ran it.

A teacher is trained at temperature T (softmax(z/T)); the student learns the teacher's soft labels
softmax(z_teacher/T), also at T; the student is then used at T = 1, i.e. its raw logits, which are
about T times larger — the source of the gradient masking the paper reports.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Defense, TrainContext


class Distillation(Defense):
    name = "distillation"

    @dataclass
    class Params:
        temperature: float = 50.0  # T for teacher and student (paper: 50); tested at T = 1

    def prepare(self, ctx: TrainContext) -> None:
        T = self.params.temperature

        def teacher_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
            return F.cross_entropy(model(x) / T, y)

        self.teacher = ctx.train_model(teacher_loss, "teacher").eval()

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        T = self.params.temperature
        with torch.no_grad():
            soft = F.softmax(self.teacher(x) / T, dim=1)
        return -(soft * F.log_softmax(model(x) / T, dim=1)).sum(dim=1).mean()
