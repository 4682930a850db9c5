"""Int2 (Boopathy et al., ICML 2020): the Int objective (see `cam_int`) at a standard PGD point,

    L = CE(x) + gamma * mean_i D_i(x, x'),   x' = PGD on CE(x') (Madry et al.),

which their paper found as robust as Int at a lower cost of finding x'. Same eps schedule (0 until
step 2k of 110k, linear to eps at 10k), same D (and `one_class`), same GAP-head requirement
(architecture = "gap_cnn"). Paper (MNIST): gamma = 0.01, eps = 0.3, PGD 40 x 0.01 -- the defaults.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .cam_int import CamInt, CamIntParams


@dataclass
class CamInt2Params(CamIntParams):
    _defense_name = "int2"  # names this defense in validation messages (a class attribute, not a field)


class CamInt2(CamInt):
    name = "int2"
    Params = CamInt2Params

    def attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: int) -> torch.Tensor:
        """x' from standard PGD on the summed cross-entropy (pgd_linf's point)."""
        return self.inner_max(model, x, lambda z: F.cross_entropy(model(z), y, reduction="sum"), step)
