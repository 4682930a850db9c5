"""Several training seeds (`[training] seeds`): every defense is trained once per seed, evaluated per
seed, and accuracies and the transfer matrix are reported as the mean across seeds with a 95%
t-interval (n - 1 degrees of freedom) and every seed's value. Two runs of one config can differ by
more than the differences between defenses being reported, so one run says little on its own.

The first seed's models are the ones attacked for the stimuli; the others ("replicates") are only
evaluated. Raters are not replicated (they stand in for people, not for a condition). The
interpretability metrics (top-k intersection, Kendall's tau, CAM discrepancy, ...) are measured on
every seed's models too and summarized the same way (`summarize_interpretability`).

What a paper claims is a difference between a defense and its reference model, and the seeds pair
them (same seed: same split, same evaluation images). So next to each model's own interval, every
defense's paired difference from the reference (`vs_reference`): per seed d_i = defense - reference,
the mean of d with a t-interval on n - 1 degrees of freedom over the n seeds where both were measured.
Two unpaired intervals that overlap do not show "no difference"; this one can. An accuracy-matched
baseline is paired the same way with the defense it is matched to (`vs_accuracy_matched`).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from advlegit.contracts.analysis_options import DEFAULT_REFERENCE  # noqa: E402

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


def reference_model(names: list[str]) -> str | None:
    """The model every other defense is paired with: the analysis's default reference defense
    ("normal"), so these differences are the contrasts the study reports; None when it is absent."""
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in names else None


def paired(seeds: list[int], values: list[float | None], reference: list[float | None]) -> dict[str, Any] | None:
    """interval() of values - reference over the seeds where both were measured (a None is not
    measured), with their number `n` and which `seeds`; None when no seed measured both."""
    both = [(s, v - r) for s, v, r in zip(seeds, values, reference, strict=True) if v is not None and r is not None]
    if not both:
        return None
    return {**interval([d for _, d in both]), "n": len(both), "seeds": [s for s, _ in both]}


def accuracy_pairs(seeds: list[int], per_seed: list[dict[str, Any]],
                   pairs: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Per pair {key: (model, reference)}, the paired difference model - reference of the clean
    accuracy and of the white-box accuracy (each model attacked by itself) at each epsilon."""
    first = per_seed[0]

    def white_box(m: dict[str, Any], attack: str, name: str, k: int) -> float:
        return m["accuracy_vs_epsilon"][attack][name][name][k]

    return {key: {
        "clean_accuracy": paired(seeds, [m["clean_accuracy"][d] for m in per_seed],
                                 [m["clean_accuracy"][ref] for m in per_seed]),
        "accuracy_vs_epsilon": {
            attack: [paired(seeds, [white_box(m, attack, d, k) for m in per_seed],
                            [white_box(m, attack, ref, k) for m in per_seed]) for k in range(len(first["epsilons"]))]
            for attack in first["accuracy_vs_epsilon"]}}
        for key, (d, ref) in pairs.items()}


def interpretability_pairs(seeds: list[int], per_seed: list[dict[str, dict[str, Any]]],
                           pairs: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Per pair {key: (model, reference)}, each interpretability metric's paired difference model -
    reference (a metric no seed measured for both is left out)."""
    out = {}
    for key, (d, ref) in pairs.items():
        diffs = {metric: paired(seeds, [s.get(d, {}).get(metric) for s in per_seed],
                                [s.get(ref, {}).get(metric) for s in per_seed]) for metric in per_seed[0].get(d, {})}
        out[key] = {metric: v for metric, v in diffs.items() if v is not None}
    return out


def _reference_pairs(reference: str, models: list[str]) -> dict[str, tuple[str, str]]:
    if reference not in models:
        raise ValueError(f"reference model {reference!r} is not one of the defenses: {', '.join(models)}")
    return {d: (d, reference) for d in models if d != reference}


def _matched_pairs(matched: dict[str, str], models: list[str]) -> dict[str, tuple[str, str]]:
    """{baseline: (the model it is matched to, baseline)} for the accuracy-matched baselines."""
    unknown = [f"{m} -> {x}" for m, x in matched.items() if m not in models or x not in models]
    if unknown:
        raise ValueError(f"accuracy-matched pairs name models that are not defenses: {', '.join(unknown)}")
    return {m: (x, m) for m, x in matched.items()}


def _paired_sections(differences, models: list[str], reference: str | None,
                     matched: dict[str, str] | None) -> dict[str, Any]:
    """vs_reference (every other model - the reference) and vs_accuracy_matched (each baseline's
    model - the baseline), each with its pairs' `differences`; neither when there is nothing to pair."""
    out: dict[str, Any] = {}
    if reference is not None:
        out["vs_reference"] = {"reference": reference, "level": LEVEL,
                               "models": differences(_reference_pairs(reference, models))}
    if matched:
        out["vs_accuracy_matched"] = {"level": LEVEL, "pairs": dict(matched),
                                      "models": differences(_matched_pairs(matched, models))}
    return out


def summarize(seeds: list[int], per_seed: list[dict[str, Any]], reference: str | None = None,
              defenses: list[str] | None = None, matched: dict[str, str] | None = None) -> dict[str, Any]:
    """Across-seed summary of evaluate()'s results, one per seed, keyed by defense name. With a
    `reference` model, `vs_reference` holds every other of `defenses`' paired differences from it
    (default: the attacked models, which leaves the raters out). With accuracy-matched baselines
    (`matched`: {baseline: the model it is matched to}), `vs_accuracy_matched` holds, per baseline,
    the paired difference of its model from it (Chen et al.'s comparison)."""
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
    attacked = {src: None for sources in first["accuracy_vs_epsilon"].values() for src in sources}
    return {**out, **_paired_sections(lambda pairs: accuracy_pairs(seeds, per_seed, pairs),
                                      list(defenses or attacked or names), reference, matched)}


def summarize_interpretability(seeds: list[int], per_seed: list[dict[str, dict[str, Any]]],
                               reference: str | None = None, matched: dict[str, str] | None = None) -> dict[str, Any]:
    """Across-seed summary of the interpretability table: per_seed[i] = {model: {metric: value}} (one
    table row per model, generation/interpretability_report.py seed_metrics). A metric a seed could
    not measure (None: no correctly classified image to attack) is left out of that seed's values;
    `n` says how many seeds it has. With a `reference` model (and accuracy-matched baselines,
    `matched`), `vs_reference` (and `vs_accuracy_matched`) hold the paired differences per metric, as
    summarize()'s, over the seeds that measured both."""
    out: dict[str, Any] = {}
    for model, first in per_seed[0].items():
        row = {}
        for metric in first:
            values = [s[model][metric] for s in per_seed if s.get(model, {}).get(metric) is not None]
            if values:
                row[metric] = {**interval(values), "n": len(values)}
        out[model] = row
    return {"seeds": list(seeds), "level": LEVEL, "models": out,
            **_paired_sections(lambda pairs: interpretability_pairs(seeds, per_seed, pairs), list(per_seed[0]),
                               reference, matched)}


def plot_interpretability(summary: dict[str, Any], metrics: list[tuple[str, str]], path: Path) -> bool:
    """One panel per metric: every seed's value (dots) and the mean with its interval, per model.
    False (nothing drawn) when no metric was measured."""
    return _plot_panels(summary["models"], metrics, f"{len(summary['seeds'])} seeds: each seed (grey), mean and "
                        f"{LEVEL:.0%} interval", path)


def plot_vs_reference(summary: dict[str, Any], interpretability_metrics: list[tuple[str, str]], path: Path) -> bool:
    """figures/seeds_vs_reference.png: per pair (model − reference), each seed's difference (dots),
    their mean with its paired interval and a zero line; clean accuracy, each attack's white-box
    accuracy at the transfer epsilon (else the largest) and the interpretability metrics given.
    False (nothing drawn) without a reference model or accuracy-matched baseline."""
    columns, rows = accuracy_differences(summary)
    if not rows:
        return False
    shown = [("clean_accuracy", "clean accuracy")]
    for attack in summary["accuracy_vs_epsilon"]:
        e = summary.get("transfer_matrix", {}).get(attack, {}).get("epsilon", max(summary["epsilons"]))
        shown.append(next(c for c in columns if c[0] == _white_box_key(attack, e)))
    interp = pair_rows(summary.get("interpretability", {}), dict)
    models = {f"{m} − {ref}": {**row, **interp.get((m, ref), {})} for (m, ref), row in rows.items()}
    return _plot_panels(models, shown + list(interpretability_metrics),
                        f"{len(summary['seeds'])} seeds: model − reference per seed (grey), mean and paired "
                        f"{LEVEL:.0%} interval", path, zero_line=True)


def _plot_panels(models: dict[str, dict[str, Any]], metrics: list[tuple[str, str]], title: str, path: Path,
                 zero_line: bool = False) -> bool:
    """One panel per metric measured for some model: each of its values (dots) and the mean with
    its interval, per model; False (nothing drawn) when none was measured."""
    shown = [(k, label) for k, label in metrics if any(row.get(k) is not None for row in models.values())]
    if not shown:
        return False
    names = list(models)
    fig, axes = plt.subplots(1, len(shown), figsize=(max(3.2, 0.8 * len(names)) * len(shown), 3.4), squeeze=False)
    for ax, (key, label) in zip(axes[0], shown, strict=True):
        if zero_line:
            ax.axhline(0.0, color="tab:red", lw=1, zorder=1)
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
    fig.suptitle(title, fontsize=9)
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


def _white_box_key(attack: str, epsilon: float) -> str:
    return f"white_box_{attack}@{epsilon:g}"


def pair_rows(holder: dict[str, Any], flatten) -> dict[tuple[str, str], dict[str, Any]]:
    """{(model, reference): flatten(its paired differences)} of a summary's vs_reference and
    vs_accuracy_matched sections (a pair in both, either way round, is listed once)."""
    rows = {}
    if "vs_reference" in holder:
        ref = holder["vs_reference"]["reference"]
        rows.update({(m, ref): flatten(r) for m, r in holder["vs_reference"]["models"].items()})
    if "vs_accuracy_matched" in holder:
        to = holder["vs_accuracy_matched"]["pairs"]
        rows.update({(to[b], b): flatten(r) for b, r in holder["vs_accuracy_matched"]["models"].items()
                     if (b, to[b]) not in rows})  # matched to the reference: that row is there, reversed
    return rows


def accuracy_differences(summary: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[tuple[str, str], Any]]:
    """summarize()'s paired sections as table columns [(key, label)] and {(model, reference): {key:
    paired()}}: clean accuracy, then each attack's white-box accuracy at each epsilon."""
    eps = summary["epsilons"]
    columns = [("clean_accuracy", "clean accuracy")] + [
        (_white_box_key(attack, e), f"white-box {attack} ε={e:g}") for attack in summary["accuracy_vs_epsilon"]
        for e in eps]

    def flatten(r: dict[str, Any]) -> dict[str, Any]:
        return {"clean_accuracy": r["clean_accuracy"], **{
            _white_box_key(attack, e): p for attack, points in r["accuracy_vs_epsilon"].items()
            for e, p in zip(eps, points, strict=True)}}

    return columns, pair_rows(summary, flatten)


def paired_lines(what: str, seeds: list[int], columns: list[tuple[str, str]],
                 rows: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    """A markdown table of paired differences: one row per (model − reference), mean [interval], with
    (n = seeds) where fewer seeds than all measured both."""
    shown = [(k, label) for k, label in columns if any(row.get(k) is not None for row in rows.values())]
    if not shown or not rows:
        return []

    def paired_cell(s: dict[str, Any] | None) -> str:
        return cell(s) + (f" (n = {s['n']})" if s is not None and s["n"] < len(seeds) else "")

    lines = [f"{what}, paired difference from the reference across seeds {seeds}: per seed model − reference, "
             f"mean [{LEVEL:.0%} t-interval, n − 1 df] over the seeds that measured both; an interval that "
             "leaves out 0 is a difference the seeds show", "",
             "| model − reference | " + " | ".join(label for _, label in shown) + " |",
             "|---|" + "---|" * len(shown)]
    lines += [f"| {m} − {ref} | " + " | ".join(paired_cell(row.get(k)) for k, _ in shown) + " |"
              for (m, ref), row in rows.items()]
    return lines


def interpretability_lines(summary: dict[str, Any], metrics: list[tuple[str, str]]) -> list[str]:
    """A markdown table: one row per model, one column per measured metric, mean [interval]; and,
    with a reference model, the table of paired differences from it."""
    models = summary["models"]
    shown = [(k, label) for k, label in metrics if any(k in row for row in models.values())]
    if not shown:
        return []
    lines = [f"Interpretability across seeds {summary['seeds']}: mean [{LEVEL:.0%} t-interval]; "
             "read a difference between defenses only where the intervals say so", "",
             "| model | " + " | ".join(label for _, label in shown) + " |", "|---|" + "---|" * len(shown)]
    lines += [f"| {n} | " + " | ".join(cell(row.get(k)) for k, _ in shown) + " |" for n, row in models.items()]
    paired = paired_lines("Interpretability", summary["seeds"], metrics, pair_rows(summary, dict))
    return lines + ([""] + paired if paired else [])


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
    columns, rows = accuracy_differences(summary)
    if rows:
        lines += [""] + paired_lines("Accuracy", summary["seeds"], columns, rows)
    if "interpretability" in summary:
        lines += [""] + interpretability_lines(summary["interpretability"], list(interpretability_metrics))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    if rows:
        write_pairs_csv(summary, path.with_name("seeds_vs_reference.csv"))


def write_pairs_csv(summary: dict[str, Any], path: Path) -> None:
    """tables/seeds_vs_reference.csv: one row per (model, reference, metric) of the paired differences,
    accuracies and interpretability metrics alike, with the seeds each used."""
    _, rows = accuracy_differences(summary)
    interp = pair_rows(summary.get("interpretability", {}), dict)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "reference", "metric", "mean", "ci_low", "ci_high", "n", "seeds", "values"])
        for pair in {**rows, **interp}:
            for metric, s in {**rows.get(pair, {}), **interp.get(pair, {})}.items():
                if s is not None:
                    writer.writerow([*pair, metric, s["mean"], s["ci_low"], s["ci_high"], s["n"],
                                     " ".join(map(str, s["seeds"])), " ".join(f"{v:.6g}" for v in s["values"])])
