"""Attack registry. Every attack: attack(model, x, y, *, target=None, **params) -> AttackResult.

A new attack is one module plus one line here.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

from .base import AttackResult, perturbation_norms
from .carlini_wagner import cw_l2
from .deepfool import deepfool
from .fgsm import fgsm, tgsm
from .jsma import jsma
from .pgd import pgd_l2, pgd_linf, tgsm_iterative
from .until_success import bisection_rounds, minimal_budget

ATTACKS: dict[str, Callable[..., AttackResult]] = {
    "fgsm": fgsm,
    "tgsm": tgsm,
    "tgsm_iterative": tgsm_iterative,
    "pgd_linf": pgd_linf,
    "pgd_l2": pgd_l2,
    "jsma": jsma,
    "deepfool": deepfool,
    "cw_l2": cw_l2,
}


def get_attack(name: str) -> Callable[..., AttackResult]:
    try:
        return ATTACKS[name]
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}") from None


def attack_param_names(name: str) -> list[str]:
    sig = inspect.signature(get_attack(name))
    return [p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY and p.name != "target"]


def attack_defaults(name: str) -> dict:
    sig = inspect.signature(get_attack(name))
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name != "target"}


__all__ = ["ATTACKS", "AttackResult", "attack_defaults", "attack_param_names", "get_attack",
           "bisection_rounds", "minimal_budget", "perturbation_norms"]
