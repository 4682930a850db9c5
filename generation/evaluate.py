"""Clean accuracy, input-gradient norms, and accuracy vs epsilon for FGSM / PGD, white-box and
transferred: for every source model the attack is made against it and every model is evaluated on
those images (the source x evaluated-model matrix of Ross & Doshi-Velez)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import fgsm, pgd_linf
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
    return result
