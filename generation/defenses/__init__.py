"""Defense registry. A new defense is one module plus one line here."""
from __future__ import annotations

import dataclasses
from typing import Any

from .base import Defense, TrainContext, build_params
from .cam_int import CamInt
from .cam_int2 import CamInt2
from .distillation import Distillation
from .etmann_gradreg import EtmannGradReg
from .fgsm_adv import FGSMAdversarial
from .gradreg import GradReg
from .gradreg_adv import GradRegAdversarial
from .ig_norm import IGNorm
from .ig_sum_norm import IGSumNorm
from .normal import Normal
from .pgd_adv import PGDAdversarial

DEFENSES: dict[str, type[Defense]] = {
    cls.name: cls
    for cls in (
        Normal, Distillation, FGSMAdversarial, GradReg, GradRegAdversarial, PGDAdversarial,
        EtmannGradReg,  # Etmann et al. 2019
        IGNorm, IGSumNorm,  # Chen et al. 2019
        CamInt, CamInt2,  # Boopathy et al. 2020
    )
}


def defense_params(kind: str, raw: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Validated, complete parameters (defaults filled in) as a plain dict for the manifest; errors name
    the key under `where` (e.g. defenses[2])."""
    return dataclasses.asdict(build_params(DEFENSES[kind], raw, where))


def build_defense(kind: str, params: dict[str, Any]) -> Defense:
    cls = DEFENSES[kind]
    return cls(build_params(cls, params))


__all__ = ["DEFENSES", "Defense", "TrainContext", "build_defense", "defense_params"]
