"""What the interpretability papers measure, per defended model, on the same test digits:
natural and PGD accuracy, Etmann's alignment and robustness, Chen's attribution robustness under
the top-k attack, Boopathy's CAM discrepancy under PGD. Returns plain JSON (cached by the pipeline).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .alignment import alignment, empirical_robustness, linearized_robustness
from .attacks import pgd_linf
from .attribution_attack import top_k_attack
from .attribution_metrics import (
    cam_discrepancy,
    cam_size,
    kendall_tau,
    logit_margin,
    spearman,
    top_k_intersection,
)
from .cam_attack import cam_top_k_attack, random_targets, targeted_min_epsilon
from .config import InterpretabilityConfig
from .metrics import accuracy
from .saliency import cam

# Part of the cache key: bump when a change to the code changes the numbers for the same config.
RESULTS_VERSION = 4   # 4: Boopathy's targeted minimum-epsilon CAM discrepancy; 3: Chen's attack (true label,
                      # correct images only, best iterate), relative CAM discrepancy and margin; 2: the top-k
                      # attack's random start


def has_gap_head(model: nn.Module) -> bool:
    return hasattr(model, "feature_maps") and isinstance(getattr(model, "linear", None), nn.Linear)


def _mean(t: torch.Tensor) -> float | None:
    t = t[torch.isfinite(t)]
    return round(t.mean().item(), 6) if t.numel() else None


def _list(t: torch.Tensor) -> list[float | None]:
    return [round(v, 6) if math.isfinite(v) else None for v in t.tolist()]  # JSON has no inf/nan


def _batched(fn, x: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   cfg: InterpretabilityConfig) -> dict[str, Any]:
    out: dict[str, Any] = {"gap_head": has_gap_head(model), "n_images": len(y),
                           "natural_accuracy": round(accuracy(model, x, y), 6)}
    x_pgd = torch.cat([pgd_linf(model, x[i:i + 128], y[i:i + 128], epsilon=cfg.pgd_epsilon,
                                steps=cfg.pgd_steps, seed=cfg.seed + i).images
                       for i in range(0, len(x), 128)])
    out["pgd_epsilon"] = cfg.pgd_epsilon
    out["pgd_accuracy"] = round(accuracy(model, x_pgd, y), 6)
    per_image: dict[str, list] = {}
    if cfg.alignment:
        a = _batched(lambda xb: alignment(model, xb), x)
        out["alignment_mean"] = _mean(a)
        out["alignment_cosine_mean"] = _mean(_batched(lambda xb: alignment(model, xb, cosine=True), x))
        rt = _batched(lambda xb: linearized_robustness(model, xb), x)
        out["linearized_robustness_mean"] = _mean(rt)
        per_image |= {"alignment": _list(a), "linearized_robustness": _list(rt)}
    if cfg.robustness_attacks:
        emp = empirical_robustness(model, x, {name: {} for name in cfg.robustness_attacks})
        finite = emp.finite()
        out["empirical_robustness_mean"] = _mean(emp.rho)
        out["empirical_robustness_median"] = round(finite.median().item(), 6) if finite.numel() else None
        out["empirical_robustness_failed"] = emp.n_failed
        per_image["empirical_robustness"] = _list(emp.rho)
    if cfg.attribution_attack:
        n = cfg.attack_images or len(x)
        res = top_k_attack(model, x[:n], y[:n], epsilon=cfg.attack_epsilon, steps=cfg.attack_steps,
                           step_size=cfg.attack_step_size, k=cfg.attack_k, restarts=cfg.attack_restarts,
                           ig_steps=cfg.attack_ig_steps or cfg.ig_steps, beta=cfg.softplus_beta,
                           select=cfg.attack_select, seed=cfg.seed)
        # Chen et al. average over the correctly classified images only (the others are not attacked)
        done = res.attacked.cpu()
        before, after = res.original_saliency[res.attacked], res.attacked_saliency[res.attacked]
        out["attribution_attack"] = {
            "n_images": n, "n_attacked": int(done.sum()), "n_misclassified_skipped": int((~done).sum()),
            "epsilon": cfg.attack_epsilon, "k_attack": cfg.attack_k, "k": cfg.top_k,
            "select": cfg.attack_select, "softplus_beta": cfg.softplus_beta,
            "label_kept": int(res.label_kept[res.attacked].sum()),
            "top_k_intersection": _mean(top_k_intersection(before, after, cfg.top_k)) if done.any() else None,
            "kendall_tau": _mean(kendall_tau(before, after)) if done.any() else None,
            "spearman": _mean(spearman(before, after)) if done.any() else None,
        }
    if cfg.cam_discrepancy and out["gap_head"]:
        with torch.no_grad():
            logits_adv = model(x_pgd)
            second = model(x).topk(2, dim=1).indices[:, 1]
        pred_adv = logits_adv.argmax(1)
        target = torch.where(pred_adv != y, pred_adv, second)  # the class the attack moved toward
        two, one = cam_discrepancy(model, x, x_pgd, y, target), cam_discrepancy(model, x, x_pgd, y)
        size = cam_size(model, x, y)
        out["cam_discrepancy"] = {
            "attack": "pgd_linf", "epsilon": cfg.pgd_epsilon,
            "two_class": _mean(two), "one_class": _mean(one),
            # divided by the clean true-class CAM's mean |value| (scale-free), beside the margin
            "two_class_relative": _mean(two / size.clamp_min(1e-12)),
            "one_class_relative": _mean(one / size.clamp_min(1e-12)),
            "margin_median": round(logit_margin(model, x, y, target).median().item(), 6),
        }
    if cfg.cam_min_epsilon and out["gap_head"]:
        out["cam_min_epsilon"], per_image["cam_min_epsilon"] = _cam_min_epsilon(model, x, y, cfg)
    if cfg.cam_top_k and out["gap_head"]:
        out["cam_top_k"] = _cam_top_k(model, x, y, cfg)
    out["per_image"] = per_image
    return out


def _cam_top_k_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float,
                      cfg: InterpretabilityConfig) -> torch.Tensor:
    def attack(i: int) -> torch.Tensor:
        xb, yb, seed = x[i:i + 128], y[i:i + 128], cfg.seed + i
        if cfg.cam_top_k_attack == "pgd":
            return pgd_linf(model, xb, yb, epsilon=epsilon, steps=cfg.cam_top_k_steps,
                            step_size=cfg.cam_top_k_step_size, seed=seed).images
        return cam_top_k_attack(model, xb, yb, epsilon=epsilon, k=cfg.cam_top_k_k, steps=cfg.cam_top_k_steps,
                                step_size=cfg.cam_top_k_step_size, seed=seed)
    return torch.cat([attack(i) for i in range(0, len(x), 128)])


def _cam_top_k(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: InterpretabilityConfig) -> dict[str, Any]:
    """Boopathy et al.'s robustness of interpretation: the true class's CAM of the clean and the attacked
    image compared at each epsilon. Like their aai_topk, the headline numbers average over the images
    whose prediction the attack did not change (a changed prediction is a different explanation);
    the intersection over all images is beside them."""
    with torch.no_grad():
        pred = model(x).argmax(1)
        clean = cam(model, x, y)
    rows = []
    for eps in cfg.cam_top_k_epsilons:
        x_adv = _cam_top_k_images(model, x, y, eps, cfg)
        with torch.no_grad():
            kept = model(x_adv).argmax(1) == pred
            attacked = cam(model, x_adv, y)
        tau = kendall_tau(clean, attacked)
        inter = top_k_intersection(clean, attacked, cfg.cam_top_k_k)  # = cam_top_k_intersection, maps made once
        rows.append({"epsilon": eps, "n_kept": int(kept.sum()),
                     "top_k_intersection": _mean(inter[kept]), "kendall_tau": _mean(tau[kept]),
                     "top_k_intersection_all": _mean(inter)})
    return {"attack": cfg.cam_top_k_attack, "class": "true", "k": cfg.cam_top_k_k, "steps": cfg.cam_top_k_steps,
            "step_size": cfg.cam_top_k_step_size, "n_images": len(y), "by_epsilon": rows}


def _cam_min_epsilon(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     cfg: InterpretabilityConfig) -> tuple[dict[str, Any], dict[str, list]]:
    """Boopathy et al.'s protocol (generation/cam_attack.py): discrepancy at each image's smallest
    targeted epsilon, beside the clean margin 1/2 (f_y - f_t) to the same random target. Averaged over
    the images the attack took to their target (the paper averages over all; a failed image has no
    adversarial example of t)."""
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    target = random_targets(y, num_classes, cfg.seed)
    res = targeted_min_epsilon(model, x, target, steps=cfg.cam_attack_steps, rounds=cfg.cam_search_rounds,
                               max_epsilon=cfg.cam_max_epsilon)
    two, one = cam_discrepancy(model, x, res.images, y, target), cam_discrepancy(model, x, res.images, y)
    size = cam_size(model, x, y).clamp_min(1e-12)
    margin = logit_margin(model, x, y, target)
    ok = res.success
    per_margin = (two / margin)[ok & (margin > 0)]
    summary = {
        "attack": "targeted_min_epsilon", "target": "random, not the true class",
        "steps": cfg.cam_attack_steps, "search_rounds": cfg.cam_search_rounds, "max_epsilon": cfg.cam_max_epsilon,
        "n_images": len(y), "n_success": int(ok.sum()),
        "epsilon_median": round(res.epsilon[ok].median().item(), 6) if ok.any() else None,
        "two_class": _mean(two[ok]), "one_class": _mean(one[ok]),
        "two_class_relative": _mean((two / size)[ok]), "one_class_relative": _mean((one / size)[ok]),
        "margin_median": round(margin[ok].median().item(), 6) if ok.any() else None,
        # the paper's plot is discrepancy against margin: per unit of margin is scale-free too
        "discrepancy_per_margin_median": round(per_margin.median().item(), 6) if per_margin.numel() else None,
    }
    per_image = {"target": target.tolist(), "success": ok.tolist(), "epsilon": _list(res.epsilon.float()),
                 "two_class": _list(two), "margin": _list(margin), "cam_size": _list(size)}
    return summary, per_image


def evaluate_interpretability(defended: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
                              cfg: InterpretabilityConfig) -> dict[str, Any]:
    x, y = x[: cfg.n_images], y[: cfg.n_images]
    models = {}
    for name, model in tqdm(defended.items(), desc="interpretability", leave=False, dynamic_ncols=True):
        models[name] = evaluate_model(model, x, y, cfg)
    return {"n_images": len(y), "models": models}
