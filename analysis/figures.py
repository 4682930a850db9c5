"""The report's figures (PNG). Each function takes tidy frames and a path, saves and closes its figure."""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

if "ipykernel" not in sys.modules:  # scripts and the CLI draw off-screen; a notebook keeps its inline backend
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from advlegit.analysis.config import level_label  # noqa: E402
from advlegit.analysis.identify import participant_means  # noqa: E402
from advlegit.analysis.stats import wilson  # noqa: E402


def _err(mid, lo, hi) -> list:
    """Asymmetric error bars; clipped at 0 (Wilson bounds can round a hair past p at 0 or 1)."""
    mid, lo, hi = (np.asarray(x, float) for x in (mid, lo, hi))
    return [np.clip(mid - lo, 0, None), np.clip(hi - mid, 0, None)]


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _finish_rate_lines(fig, ax, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    """Shared finish of the rate-vs-x line plots: labels, [0,1] axis, legend, grid, save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)


def rates_by_defense(rates: pd.DataFrame, outcome_label: str, path: Path, reference: str = "",
                     alpha: float = 0.05) -> None:
    """Rates per defense (all attacks pooled, and per attack) with Wilson intervals."""
    attacks = [a for a in rates["attack"].unique() if a != "(all)"]
    series = ["(all)"] + (attacks if len(attacks) > 1 else [])
    defenses = list(rates.loc[rates["attack"] == "(all)"].sort_values("rate")["defense"])
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(defenses) + 2), 4))
    width = 0.8 / len(series)
    for i, a in enumerate(series):
        r = rates[rates["attack"] == a].set_index("defense").reindex(defenses)
        x = np.arange(len(defenses)) + (i - (len(series) - 1) / 2) * width
        ax.errorbar(x, r["rate"], yerr=_err(r["rate"], r["ci_low"], r["ci_high"]),
                    fmt="o", capsize=3, label="all attacks" if a == "(all)" else a)
    names = [f"{d}\n(reference)" if d == reference else d for d in defenses]
    ax.set_xticks(np.arange(len(defenses)), names, rotation=20, ha="right")
    ax.set_ylabel(f"{outcome_label} (mean of participant rates)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{outcome_label} by defense, {level_label(alpha)} Wilson intervals")
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def participant_lines(d: pd.DataFrame, outcome: str, outcome_label: str, path: Path,
                      max_lines: int = 80, seed: int = 0) -> None:
    """One thin line per participant across defenses, the mean on top."""
    pm = participant_means(d, outcome, ["defense"]).pivot(index="participant_id", columns="defense",
                                                          values=outcome)
    order = pm.mean().sort_values().index
    pm = pm[order]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(order) + 2), 4))
    shown = pm.sample(n=min(max_lines, len(pm)), random_state=seed)
    x = np.arange(len(order))
    jitter = np.random.default_rng(seed).normal(0, 0.015, shown.shape)
    for row, j in zip(shown.to_numpy(), jitter, strict=True):
        ax.plot(x, row + j, color="tab:gray", alpha=0.15, lw=0.8)
    ax.plot(x, pm.mean().to_numpy(), color="tab:red", lw=2.5, marker="o", label="mean over participants")
    ax.set_xticks(x, order, rotation=20, ha="right")
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel(f"participant's {outcome_label}")
    note = f" ({len(shown)} of {len(pm)} shown)" if len(shown) < len(pm) else ""
    ax.set_title(f"Per-participant {outcome_label} across defenses{note}")
    ax.legend(fontsize=8)
    _save(fig, path)


def rate_vs_perturbation(d: pd.DataFrame, outcome: str, outcome_label: str, path: Path,
                         alpha: float, bins: int = 5) -> None:
    """Outcome against L2 perturbation size (quantile bins per defense)."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name, g in d.groupby("defense"):
        if g["norm_l2"].nunique() < 2:
            continue
        q = pd.qcut(g["norm_l2"], q=min(bins, g["norm_l2"].nunique()), duplicates="drop")
        agg = g.groupby(q, observed=True).agg(x=("norm_l2", "median"), p=(outcome, "mean"),
                                              n=(outcome, "size"))
        lo, hi = wilson(agg["p"], agg["n"], alpha)
        ax.errorbar(agg["x"], agg["p"], yerr=_err(agg["p"], lo, hi), marker="o",
                    capsize=2, label=name)
    _finish_rate_lines(fig, ax, "L2 norm of the perturbation (bin median)", outcome_label,
                       f"{outcome_label} vs perturbation size (responses; Wilson {level_label(alpha)})", path)


def budget_breakdown(table: pd.DataFrame, outcome_label: str, path: Path, alpha: float = 0.05) -> None:
    """Rate per ε (budget) per defense, from the per-budget rates table."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    budgets = sorted(table["budget"].unique())
    groups = list(table.groupby("defense"))
    step = (min(np.diff(budgets)) if len(budgets) > 1 else 0.1) * 0.5 / max(len(groups), 1)
    for i, (name, g) in enumerate(groups):  # dodge so intervals of different defenses don't overlap
        g = g.set_index("budget").reindex(budgets)
        x = np.asarray(budgets) + (i - (len(groups) - 1) / 2) * step
        ax.errorbar(x, g["rate"], yerr=_err(g["rate"], g["ci_low"], g["ci_high"]),
                    marker="o", capsize=2, label=name)
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    _finish_rate_lines(fig, ax, "attack budget ε (budget column)", outcome_label,
                       f"{outcome_label} by ε and defense ({level_label(alpha)} Wilson on participant means)", path)


def strengths(bt: pd.DataFrame, path: Path, level: str = "95%") -> None:
    """Bradley–Terry strengths with bootstrap intervals."""
    bt = bt.sort_values("strength")
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(bt) + 1.5))
    y = np.arange(len(bt))
    ax.errorbar(bt["strength"], y, xerr=_err(bt["strength"], bt["ci_low"], bt["ci_high"]),
                fmt="o", capsize=3)
    ax.axvline(0, color="gray", lw=0.8)
    ax.set_yticks(y, bt["defense"])
    ax.set_xlabel("Bradley-Terry strength (log-odds vs reference = 0)")
    ax.set_title(f"Which defense's image is chosen: strengths, {level} bootstrap CI", fontsize=10)
    _save(fig, path)


def mean_ratings(desc: pd.DataFrame, path: Path, level: str = "95%") -> None:
    desc = desc.sort_values("mean")
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(desc) + 2), 4))
    x = np.arange(len(desc))
    ax.errorbar(x, desc["mean"], yerr=_err(desc["mean"], desc["ci_low"], desc["ci_high"]),
                fmt="o", capsize=3)
    ax.set_xticks(x, desc["defense"], rotation=20, ha="right")
    ax.set_ylim(1, 7)
    ax.set_ylabel("rating (1-7), mean of participant means")
    ax.set_title(f"Ratings by defense, {level} t-interval over participants", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def controls(rates: pd.DataFrame, path: Path, level: str = "95%") -> None:
    """Target-class rate per defense, one marker per stimulus kind (adversarial and its controls)."""
    _by_stimulus_kind(rates, "rate", "target-class rate (mean of participant rates)", (0, 1),
                      f"Adversarial images vs their controls, {level} Wilson intervals", path)


def mean_ratings_by_kind(desc: pd.DataFrame, path: Path, level: str = "95%") -> None:
    """Mean rating per defense, one marker per stimulus kind (adversarial and its controls), t-intervals."""
    _by_stimulus_kind(desc, "mean", "rating (1-7), mean of participant means", (1, 7),
                      f"Ratings: adversarial images vs their controls, {level} t-intervals", path)


def _by_stimulus_kind(table: pd.DataFrame, value: str, ylabel: str, ylim: tuple[float, float], title: str,
                      path: Path) -> None:
    """`value` with its interval per defense, the stimulus kinds side by side (adversarial first)."""
    kinds = ["adversarial"] + sorted(set(table["stimulus_kind"]) - {"adversarial"})
    defenses = sorted(table["defense"].unique())
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(defenses) + 2), 4))
    width = 0.8 / len(kinds)
    for i, k in enumerate(kinds):
        r = table[table["stimulus_kind"] == k].set_index("defense").reindex(defenses)
        x = np.arange(len(defenses)) + (i - (len(kinds) - 1) / 2) * width
        ax.errorbar(x, r[value], yerr=_err(r[value], r["ci_low"], r["ci_high"]), fmt="o", capsize=3, label=k)
    ax.set_xticks(np.arange(len(defenses)), defenses, rotation=20, ha="right")
    ax.set_xlabel("defense")
    ax.set_ylabel(ylabel)
    ax.set_ylim(*ylim)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, title="stimulus kind", title_fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    _save(fig, path)


def power_curve(table: pd.DataFrame, target: float, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(table["n_participants"], table["power"],
                yerr=_err(table["power"], table["ci_low"], table["ci_high"]),
                marker="o", capsize=3)
    ax.axhline(target, color="gray", ls="--", lw=1, label=f"target power {target:g}")
    ax.set_xlabel("number of participants (after exclusions)")
    ax.set_ylabel("power (share of simulated studies rejecting)")
    ax.set_ylim(0, 1.02)
    ax.set_title("Power of the primary test, 95% Wilson over simulations", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
