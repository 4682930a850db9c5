"""Clean accuracy, input-gradient norms, and accuracy vs epsilon for FGSM / PGD, white-box and
transferred: for every source model the attack is made against it and every model is evaluated on
those images (the source x evaluated-model matrix of Ross & Doshi-Velez); optionally the same matrix
for JSMA, which has no epsilon (an L0 attack that stops at the target or at gamma of the pixels)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import fgsm, pgd_linf
from .attacks.jsma import jsma
from .config import EvaluationConfig
from .metrics import accuracy, input_gradient_norms


def _attack_images(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                   cfg: EvaluationConfig, batch_size: int = 256) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        if name == "fgsm":
            res = fgsm(model, xb, yb, epsilon=eps)
        else:
            res = pgd_linf(model, xb, yb, epsilon=eps, steps=cfg.pgd_steps, seed=i)
        out.append(res.images)
    return torch.cat(out)


def evaluate(defended: dict[str, nn.Module], everyone: dict[str, nn.Module], x: torch.Tensor,
             y: torch.Tensor, cfg: EvaluationConfig) -> dict[str, Any]:
    """`defended` are attacked (sources); `everyone` (defended + raters) are evaluated."""
    x_eval, y_eval = x[: cfg.n_images], y[: cfg.n_images]
    result: dict[str, Any] = {
        "n_images": int(len(y_eval)),
        "epsilons": list(cfg.epsilons),
        "clean_accuracy": {n: accuracy(m, x, y) for n, m in everyone.items()},
        "input_gradient_norm": {n: input_gradient_norms(m, x_eval, y_eval).mean().item()
                                for n, m in everyone.items()},
        "accuracy_vs_epsilon": {},
    }
    jobs = [(a, s, e) for a in cfg.attacks for s in defended for e in cfg.epsilons]
    curves: dict[str, dict[str, dict[str, list[float]]]] = {
        a: {s: {n: [] for n in everyone} for s in defended} for a in cfg.attacks}
    for attack, source, eps in tqdm(jobs, desc="evaluate", leave=False, dynamic_ncols=True):
        x_adv = x_eval if eps == 0 else _attack_images(attack, defended[source], x_eval, y_eval, eps, cfg)
        for name, model in everyone.items():
            curves[attack][source][name].append(accuracy(model, x_adv, y_eval))
    result["accuracy_vs_epsilon"] = curves
    if cfg.heatmap_epsilon in cfg.epsilons:
        k = cfg.epsilons.index(cfg.heatmap_epsilon)
        result["transfer_matrix"] = {
            a: {"epsilon": cfg.heatmap_epsilon,
                "rows_evaluated": list(everyone), "cols_source": list(defended),
                "accuracy": [[curves[a][s][n][k] for s in defended] for n in everyone]}
            for a in cfg.attacks}
    if cfg.jsma_transfer:
        result["jsma_transfer"] = jsma_transfer(defended, everyone, x_eval, y_eval)
    return result


def jsma_transfer(defended: dict[str, nn.Module], everyone: dict[str, nn.Module], x: torch.Tensor,
                  y: torch.Tensor, theta: float = 1.0, gamma: float = 0.25, batch_size: int = 64) -> dict[str, Any]:
    """Accuracy of every model on JSMA images made against each defended model (target: the next class,
    as the stimuli), and how often the attack reached its target on the model it was made against."""
    acc: dict[str, dict[str, float]] = {n: {} for n in everyone}
    white_box_success: dict[str, float] = {}
    for source, model in tqdm(defended.items(), desc="jsma transfer", leave=False, dynamic_ncols=True):
        parts, hits = [], 0
        for i in range(0, len(x), batch_size):
            res = jsma(model, x[i:i + batch_size], y[i:i + batch_size], theta=theta, gamma=gamma)
            parts.append(res.images)
            hits += int(res.success.sum())
        x_adv = torch.cat(parts)
        white_box_success[source] = hits / len(y)
        for name, m in everyone.items():
            acc[name][source] = accuracy(m, x_adv, y)
    return {"theta": theta, "gamma": gamma, "target": "next",
            "rows_evaluated": list(everyone), "cols_source": list(defended),
            "accuracy": [[acc[n][s] for s in defended] for n in everyone],
            "white_box_success": white_box_success}
