"""Figures and tables of the interpretability evaluation: saliency grids (the same digits across
defenses), alignment vs robustness scatter per model, and the per-model table in the layout of
Chen et al. (natural / PGD accuracy, top-k intersection and Kendall's tau under attack)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from .render import to_uint8  # noqa: E402
from .saliency_images import applies, display_maps  # noqa: E402
from .seeds import interpretability_lines  # noqa: E402

LABELS = {"gradient": "gradient", "integrated_gradients": "integrated\ngradients", "smoothgrad": "SmoothGrad",
          "cam": "CAM", "grad_cam": "Grad-CAM"}


def plot_saliency_grids(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, methods: list[str],
                        figures: Path, *, ig_steps: int = 50) -> list[Path]:
    """One figure per defense: the digits on top, one row per saliency method below (CAM added for
    GAP-head models); the same digits in every defense's figure."""
    paths = []
    for name, model in models.items():
        mine = [m for m in methods if applies(m, model)]
        if applies("cam", model) and "cam" not in mine:
            mine.append("cam")
        with torch.no_grad():
            pred = model(x).argmax(1)
        rows = [(m, display_maps(model, x, m, pred, ig_steps=ig_steps).cpu().numpy()) for m in mine]
        n = len(x)
        fig, axes = plt.subplots(len(rows) + 1, n, figsize=(0.95 * n + 0.9, 1.0 * (len(rows) + 1) + 0.4),
                                 squeeze=False)
        for j in range(n):
            ax = axes[0, j]
            ax.imshow(to_uint8(x[j].cpu().numpy()), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ok = int(pred[j]) == int(y[j])
            ax.set_title(f"{int(y[j])}→{int(pred[j])}" if not ok else f"{int(y[j])}", fontsize=8,
                         color="black" if ok else "red", pad=2)
            for r, (_, maps) in enumerate(rows, 1):
                axes[r, j].imshow(maps[j], cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
        for r, (method, _) in enumerate([("image", None)] + rows):
            axes[r, 0].set_ylabel(LABELS.get(method, method), fontsize=8, rotation=0, ha="right", va="center")
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{name}: saliency of the predicted class (red title: misclassified)", fontsize=9)
        fig.tight_layout(rect=(0, 0, 1, 0.95), pad=0.3)
        path = figures / f"saliency_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_alignment_vs_robustness(interp: dict[str, Any], path: Path) -> None:
    """Etmann et al.'s Fig.: alignment alpha against linearized rho~ (and empirical rho), a panel per model."""
    models = {n: r for n, r in interp["models"].items() if "alignment" in r["per_image"]}
    cols = min(4, len(models))
    rows = int(np.ceil(len(models) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.0 * rows), squeeze=False, sharex=True, sharey=True)
    for ax, (name, r) in zip(axes.flat, models.items(), strict=False):  # the grid may have spare cells
        a = np.array([np.nan if v is None else v for v in r["per_image"]["alignment"]], dtype=float)
        rt = np.array([np.nan if v is None else v for v in r["per_image"]["linearized_robustness"]], dtype=float)
        ax.scatter(rt, a, s=9, alpha=0.7, label="linearized ρ̃")
        if "empirical_robustness" in r["per_image"]:
            re = np.array([np.nan if v is None else v for v in r["per_image"]["empirical_robustness"]], dtype=float)
            ax.scatter(re, a, s=9, alpha=0.7, marker="x", label="empirical ρ")
        ax.set_title(f"{name}\nmean α = {r['alignment_mean']:.2f}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    for ax in axes[-1, :]:
        ax.set_xlabel("distance to the boundary (L2)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("alignment α = |⟨x, ∇Ψ⟩| / ‖∇Ψ‖", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle("alignment vs robustness per model (Etmann et al. 2019)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cam_discrepancy_vs_margin(interp: dict[str, Any], path: Path) -> bool:
    """Boopathy et al.'s view: per image, the two-class CAM discrepancy at the smallest targeted
    epsilon against the clean margin 1/2 (f_y - f_t), a panel per GAP-head model. False: no model had it."""
    models = {n: r["per_image"]["cam_min_epsilon"] for n, r in interp["models"].items()
              if "cam_min_epsilon" in r["per_image"]}
    if not models:
        return False
    fig, axes = plt.subplots(1, len(models), figsize=(3.4 * len(models), 3.2), squeeze=False)
    for ax, (name, p) in zip(axes[0], models.items(), strict=True):
        ok = np.array(p["success"], dtype=bool)
        m = np.array([np.nan if v is None else v for v in p["margin"]], dtype=float)
        d = np.array([np.nan if v is None else v for v in p["two_class"]], dtype=float)
        ax.scatter(m[ok], d[ok], s=10, alpha=0.7, label="reached t")
        ax.scatter(m[~ok], d[~ok], s=10, marker="x", color="grey", label="did not")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("margin ½(f_y − f_t), clean", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("CAM discrepancy (2-class) ÷ (H·W)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("CAM discrepancy at the smallest targeted ε vs margin (Boopathy et al. 2020)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


COLUMNS = [
    ("model", "model"), ("architecture", "architecture"), ("natural_accuracy", "natural acc."),
    ("pgd_accuracy", "PGD acc."), ("attack_n_attacked", "attacked (correct)"),
    ("top_k_intersection", "top-k intersection"),
    ("kendall_tau", "Kendall's τ"), ("spearman", "Spearman"), ("alignment_mean", "mean α"),
    ("alignment_cosine_mean", "mean cos α"), ("linearized_robustness_mean", "mean ρ̃"),
    ("empirical_robustness_median", "median ρ"), ("empirical_robustness_failed", "ρ failed"),
    ("cam_discrepancy_two_class", "CAM discrepancy (2-class)"),
    ("cam_discrepancy_one_class", "CAM discrepancy (1-class)"),
    ("cam_discrepancy_two_class_relative", "CAM disc. ÷ CAM size (2-class)"),
    ("cam_margin_median", "median margin ½(f_y − f_t)"),
    ("cam_min_eps_success", "min-ε attack reached t"),
    ("cam_min_eps_epsilon_median", "min-ε: median ε"),
    ("cam_min_eps_two_class", "min-ε: CAM disc. (2-class)"),
    ("cam_min_eps_two_class_relative", "min-ε: CAM disc. ÷ CAM size"),
    ("cam_min_eps_margin_median", "min-ε: median margin ½(f_y − f_t)"),
    ("cam_min_eps_per_margin_median", "min-ε: median disc. ÷ margin"),
    ("cam_top_k_epsilon", "CAM top-k: largest ε"),
    ("cam_top_k_intersection", "CAM top-k ∩ at that ε"),
    ("cam_top_k_kendall_tau", "CAM Kendall's τ at that ε"),
]


# Columns that describe the run rather than measure the model: not summarized across seeds.
_NOT_MEASURES = ("model", "architecture", "attack_n_attacked", "empirical_robustness_failed", "cam_min_eps_success",
                "cam_top_k_epsilon")
SEED_COLUMNS = [(k, label) for k, label in COLUMNS if k not in _NOT_MEASURES]
# The metrics whose spread across seeds is drawn (figures/seeds_interpretability.png).
SEED_FIGURE = [("top_k_intersection", "top-k intersection"), ("kendall_tau", "Kendall's τ"),
               ("alignment_mean", "mean α"), ("cam_min_eps_two_class_relative", "CAM disc. ÷ CAM size (min-ε)")]


def seed_metrics(interp: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{model: {metric: value}} of one seed's interpretability results (the table's measures)."""
    return {r["model"]: {k: r[k] for k, _ in SEED_COLUMNS} for r in table_rows(interp, {})}


def table_rows(interp: dict[str, Any], architectures: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    for name, r in interp["models"].items():
        attack = r.get("attribution_attack", {})
        cam = r.get("cam_discrepancy", {})
        low = r.get("cam_min_epsilon", {})
        top = r.get("cam_top_k", {})
        last = max(top["by_epsilon"], key=lambda e: e["epsilon"]) if top else {}  # the strongest attack
        rows.append({
            "model": name, "architecture": architectures.get(name, ""),
            "natural_accuracy": r["natural_accuracy"], "pgd_accuracy": r["pgd_accuracy"],
            "attack_n_attacked": attack.get("n_attacked"),
            "top_k_intersection": attack.get("top_k_intersection"), "kendall_tau": attack.get("kendall_tau"),
            "spearman": attack.get("spearman"), "alignment_mean": r.get("alignment_mean"),
            "alignment_cosine_mean": r.get("alignment_cosine_mean"),
            "linearized_robustness_mean": r.get("linearized_robustness_mean"),
            "empirical_robustness_median": r.get("empirical_robustness_median"),
            "empirical_robustness_failed": r.get("empirical_robustness_failed"),
            "cam_discrepancy_two_class": cam.get("two_class"), "cam_discrepancy_one_class": cam.get("one_class"),
            "cam_discrepancy_two_class_relative": cam.get("two_class_relative"),
            "cam_margin_median": cam.get("margin_median"),
            "cam_min_eps_success": (f"{low['n_success']}/{low['n_images']}" if low else None),
            "cam_min_eps_epsilon_median": low.get("epsilon_median"),
            "cam_min_eps_two_class": low.get("two_class"),
            "cam_min_eps_two_class_relative": low.get("two_class_relative"),
            "cam_min_eps_margin_median": low.get("margin_median"),
            "cam_min_eps_per_margin_median": low.get("discrepancy_per_margin_median"),
            "cam_top_k_epsilon": last.get("epsilon"), "cam_top_k_intersection": last.get("top_k_intersection"),
            "cam_top_k_kendall_tau": last.get("kendall_tau"),
        })
    return rows


def write_tables(interp: dict[str, Any], architectures: dict[str, str], cfg, folder: Path,
                 across_seeds: dict[str, Any] | None = None) -> None:
    """tables/interpretability.csv and .md: one row per model (the first seed's). With several
    training seeds (`across_seeds`, seeds.summarize_interpretability) the .md adds every metric's mean
    and interval across seeds, and interpretability_seeds.csv holds them."""
    folder.mkdir(exist_ok=True)
    rows = table_rows(interp, architectures)
    keys = [k for k, _ in COLUMNS if any(r[k] is not None for r in rows)]
    with open(folder / "interpretability.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    head = dict(COLUMNS)
    fmt = lambda v: "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [f"# Interpretability: {interp['n_images']} test digits",
             "",
             f"PGD: L∞ ε = {cfg.pgd_epsilon}, {cfg.pgd_steps} steps. Attribution attack (top-k, Ghorbani et al.): "
             f"ε = {cfg.attack_epsilon}, {cfg.attack_steps} steps × {cfg.attack_step_size}, k = {cfg.attack_k}, "
             f"{cfg.attack_restarts} restart(s), softplus β = {cfg.softplus_beta}, best iterate by "
             f"{cfg.attack_select}; top-k intersection at k = {cfg.top_k} and Kendall's τ between the "
             "true label's |IG| maps before and after, over the correctly classified digits only. "
             "α, ρ̃: Etmann et al.; ρ: smallest L2 of "
             f"{', '.join(cfg.robustness_attacks) or '—'}. CAM discrepancy: under untargeted PGD at "
             f"ε = {cfg.pgd_epsilon}, and (min-ε) under Boopathy et al.'s targeted attack to a random class at "
             f"each image's smallest successful ε ({cfg.cam_search_rounds} search rounds, {cfg.cam_attack_steps} "
             "steps), over the images it took to the target; read it divided by the CAM's size or by the margin, "
             "not raw (a model with small logits looks robust in raw units)."
             + (f" CAM top-k (Boopathy et al.): k = {cfg.cam_top_k_k} cells of the true class's CAM, clean vs "
                f"attacked ({cfg.cam_top_k_attack}, {cfg.cam_top_k_steps} steps × {cfg.cam_top_k_step_size}) at "
                "the largest ε, over the digits whose prediction the attack did not change; every ε is in "
                "metrics.json." if getattr(cfg, "cam_top_k", False) else ""),
             "",
             "| " + " | ".join(head[k] for k in keys) + " |",
             "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    if across_seeds:
        lines[2:2] = [f"The table below is the first training seed's models; the second one is the mean "
                      f"across seeds {across_seeds['seeds']}.", ""]
        lines += [""] + interpretability_lines(across_seeds, SEED_COLUMNS)
        _write_seed_csv(across_seeds, folder / "interpretability_seeds.csv")
    (folder / "interpretability.md").write_text("\n".join(lines) + "\n")


def _write_seed_csv(across_seeds: dict[str, Any], path: Path) -> None:
    """One row per (model, metric): mean, interval, n seeds measured, every seed's value."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "metric", "mean", "ci_low", "ci_high", "n", "values"])
        for model, row in across_seeds["models"].items():
            for metric, s in row.items():
                writer.writerow([model, metric, s["mean"], s["ci_low"], s["ci_high"], s["n"],
                                 " ".join(f"{v:.6g}" for v in s["values"])])
