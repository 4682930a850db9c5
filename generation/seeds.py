"""Several training seeds (`[training] seeds`): every defense is trained once per seed, evaluated per
seed, and accuracies and the transfer matrix are reported as the mean across seeds with a 95%
t-interval (n - 1 degrees of freedom) and every seed's value. Two runs of one config can differ by
more than the differences between defenses being reported, so one run says little on its own.

The first seed's models are the ones attacked for the stimuli; the others ("replicates") are only
evaluated. Raters are not replicated (they stand in for people, not for a condition). The
interpretability metrics (top-k intersection, Kendall's tau, CAM discrepancy, ...) are measured on
every seed's models too and summarized the same way (`summarize_interpretability`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

LEVEL = 0.95


def interval(values: list[float]) -> dict[str, Any]:
    """Mean, 95% t-interval of the mean (null for a single seed), min, max and the values."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        low = high = None
    else:
        half = float(stats.t.ppf(0.5 + LEVEL / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
        low, high = mean - half, mean + half
    return {"mean": mean, "ci_low": low, "ci_high": high, "min": float(v.min()), "max": float(v.max()),
            "values": [float(x) for x in v]}


def summarize(seeds: list[int], per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Across-seed summary of evaluate()'s results, one per seed, keyed by defense name."""
    first = per_seed[0]
    names = list(first["clean_accuracy"])
    out: dict[str, Any] = {
        "seeds": list(seeds), "level": LEVEL, "epsilons": first["epsilons"],
        "clean_accuracy": {n: interval([m["clean_accuracy"][n] for m in per_seed]) for n in names},
        "accuracy_vs_epsilon": {},
    }
    for attack, sources in first["accuracy_vs_epsilon"].items():
        out["accuracy_vs_epsilon"][attack] = {
            src: {ev: [interval([m["accuracy_vs_epsilon"][attack][src][ev][k] for m in per_seed])
                       for k in range(len(first["epsilons"]))] for ev in evs}
            for src, evs in sources.items()}
    if "transfer_matrix" in first:
        out["transfer_matrix"] = {}
        for attack, tm in first["transfer_matrix"].items():
            cells = [[interval([m["transfer_matrix"][attack]["accuracy"][i][j] for m in per_seed])
                      for j in range(len(tm["cols_source"]))] for i in range(len(tm["rows_evaluated"]))]
            out["transfer_matrix"][attack] = {
                "epsilon": tm["epsilon"], "rows_evaluated": tm["rows_evaluated"], "cols_source": tm["cols_source"],
                **{key: [[c[key] for c in row] for row in cells] for key in ("mean", "ci_low", "ci_high")},
                "values": [[c["values"] for c in row] for row in cells]}
    return out


def summarize_interpretability(seeds: list[int], per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Across-seed summary of the interpretability table: per_seed[i] = {model: {metric: value}} (one
    table row per model, generation/interpretability_report.py seed_metrics). A metric a seed could
    not measure (None: no correctly classified image to attack) is left out of that seed's values;
    `n` says how many seeds it has."""
    out: dict[str, Any] = {}
    for model, first in per_seed[0].items():
        row = {}
        for metric in first:
            values = [s[model][metric] for s in per_seed if s.get(model, {}).get(metric) is not None]
            if values:
                row[metric] = {**interval(values), "n": len(values)}
        out[model] = row
    return {"seeds": list(seeds), "level": LEVEL, "models": out}


def plot_interpretability(summary: dict[str, Any], metrics: list[tuple[str, str]], path: Path) -> bool:
    """One panel per metric: every seed's value (dots) and the mean with its interval, per model.
    False (nothing drawn) when no metric was measured."""
    models = summary["models"]
    shown = [(k, label) for k, label in metrics if any(k in row for row in models.values())]
    if not shown:
        return False
    names = list(models)
    fig, axes = plt.subplots(1, len(shown), figsize=(max(3.2, 0.8 * len(names)) * len(shown), 3.4), squeeze=False)
    for ax, (key, label) in zip(axes[0], shown, strict=True):
        for i, n in enumerate(names):
            s = models[n].get(key)
            if s is None:
                continue
            ax.scatter([i] * len(s["values"]), s["values"], s=14, color="grey", zorder=2)
            if s["ci_low"] is not None:
                ax.errorbar(i, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                            fmt="o", color="black", capsize=4, zorder=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{len(summary['seeds'])} seeds: each seed (grey), mean and {LEVEL:.0%} interval", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_clean_accuracy(summary: dict[str, Any], path: Path) -> None:
    """Every seed's clean accuracy (dots) and the mean with its interval (bar), per model."""
    names = list(summary["clean_accuracy"])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names)), 3.2))
    for i, n in enumerate(names):
        s = summary["clean_accuracy"][n]
        ax.scatter([i] * len(s["values"]), s["values"], s=14, color="grey", zorder=2)
        if s["ci_low"] is not None:
            ax.errorbar(i, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                        fmt="o", color="black", capsize=4, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("clean accuracy")
    ax.set_title(f"{len(summary['seeds'])} seeds: each seed (grey), mean and {LEVEL:.0%} interval", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_white_box_curves(summary: dict[str, Any], attack: str, path: Path) -> None:
    """White-box accuracy vs epsilon per defense: mean line, interval band, each seed thin."""
    curves = summary["accuracy_vs_epsilon"][attack]
    eps = summary["epsilons"]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for src, evs in curves.items():
        points = evs[src]
        mean = [p["mean"] for p in points]
        line, = ax.plot(eps, mean, marker="o", ms=3, lw=1.8, label=src)
        if points[0]["ci_low"] is not None:
            ax.fill_between(eps, [p["ci_low"] for p in points], [p["ci_high"] for p in points],
                            color=line.get_color(), alpha=0.15, lw=0)
        for k in range(len(points[0]["values"])):
            ax.plot(eps, [p["values"][k] for p in points], color=line.get_color(), lw=0.6, alpha=0.5)
    ax.set_xlabel("epsilon (L-inf)")
    ax.set_ylabel("white-box accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f"{attack.upper()}, {len(summary['seeds'])} seeds: mean, {LEVEL:.0%} interval, each seed", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cell(s: dict[str, Any] | None) -> str:
    """mean [ci_low, ci_high] of one interval() (just the mean for one seed, a dash for none)."""
    if s is None:
        return "—"
    ci = f" [{s['ci_low']:.3f}, {s['ci_high']:.3f}]" if s["ci_low"] is not None else ""
    return f"{s['mean']:.3f}{ci}"


def interpretability_lines(summary: dict[str, Any], metrics: list[tuple[str, str]]) -> list[str]:
    """A markdown table: one row per model, one column per measured metric, mean [interval]."""
    models = summary["models"]
    shown = [(k, label) for k, label in metrics if any(k in row for row in models.values())]
    if not shown:
        return []
    lines = [f"Interpretability across seeds {summary['seeds']}: mean [{LEVEL:.0%} t-interval]; "
             "read a difference between defenses only where the intervals say so", "",
             "| model | " + " | ".join(label for _, label in shown) + " |", "|---|" + "---|" * len(shown)]
    lines += [f"| {n} | " + " | ".join(cell(row.get(k)) for k, _ in shown) + " |" for n, row in models.items()]
    return lines


def write_table(summary: dict[str, Any], path: Path, interpretability_metrics: list[tuple[str, str]] = ()) -> None:
    """tables/seeds.md: clean accuracy and white-box accuracy at the transfer epsilon, and the
    interpretability metrics when measured, mean [interval]."""

    lines = [f"Across seeds {summary['seeds']}: mean [{LEVEL:.0%} t-interval]", "",
             "| model | clean accuracy |", "|---|---|"]
    lines += [f"| {n} | {cell(s)} |" for n, s in summary["clean_accuracy"].items()]
    for attack, tm in summary.get("transfer_matrix", {}).items():
        lines += ["", f"{attack} at epsilon {tm['epsilon']} (rows: evaluated, columns: source)", "",
                  "| evaluated \\ source | " + " | ".join(tm["cols_source"]) + " |",
                  "|---|" + "---|" * len(tm["cols_source"])]
        for i, row in enumerate(tm["rows_evaluated"]):
            cells = [cell({"mean": tm["mean"][i][j], "ci_low": tm["ci_low"][i][j], "ci_high": tm["ci_high"][i][j]})
                     for j in range(len(tm["cols_source"]))]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    if "interpretability" in summary:
        lines += [""] + interpretability_lines(summary["interpretability"], list(interpretability_metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
