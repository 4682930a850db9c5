"""Cost of the interpretability defenses and of integrated gradients, as ratios measured in one run.

- seconds per training step (batch 64, embedded MNIST, Adam) of each new defense, gradreg and
  pgd_adv, over a plain cross-entropy step of the same model (Ross CNN or GAP CNN, half width as
  in the demo), at the end of training (every epsilon/lambda ramp fully on);
- integrated gradients with m points over m plain input-gradient passes (forward + backward of the
  class logit, batch 64), m = 10 and 50, without and with create_graph (+ the backward to the
  weights a training loss adds).

Runs are interleaved (a, b, c, a, b, c, ...) after a warm-up each; a ratio is the median over
rounds of the two times within a round, so drift in machine load hits both sides alike. Writes its section
of BENCHMARKS.md.

    .venv/bin/python benchmarks/bench_saliency.py [--repeats 9] [--width 0.5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from advlegit.generation.data import load_embedded  # noqa: E402
from advlegit.generation.defenses import DEFENSES, TrainContext, build_defense, defense_params  # noqa: E402
from advlegit.generation.models import build_model  # noqa: E402
from advlegit.generation.saliency import integrated_gradients, logit_gradient  # noqa: E402
from benchmarks._report import write_section  # noqa: E402

TOTAL_STEPS = 500  # the demo's run length; every step is timed at its end (ramps fully on)
STEP_CASES = [  # (label, defense, params, architecture)
    ("plain cross-entropy", "normal", {}, "ross_cnn"),
    ("gradreg (double backprop, per example)", "gradreg", {}, "ross_cnn"),
    ("etmann_gradreg (double backprop, batch mean)", "etmann_gradreg", {}, "ross_cnn"),
    ("pgd_adv, demo's 5 steps", "pgd_adv", {"steps": 5, "step_size": 0.15}, "ross_cnn"),
    ("ig_norm (defaults)", "ig_norm", {}, "ross_cnn"),
    ("ig_sum_norm (defaults)", "ig_sum_norm", {}, "ross_cnn"),
    ("plain cross-entropy", "normal", {}, "gap_cnn"),
    ("int (defaults)", "int", {}, "gap_cnn"),
    ("int2 (defaults)", "int2", {}, "gap_cnn"),
]


def interleaved_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Wall time of each function in every round; a round runs them all once, in turn."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def paired_ratio(num: list[float], den: list[float], scale: float = 1.0) -> str:
    """Median over rounds of num/den within a round (the pair ran back to back under the same
    load), with the range across rounds."""
    ratios = [a / (scale * b) for a, b in zip(num, den, strict=True)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


def training_step(kind: str, params: dict, architecture: str, width: float, x: torch.Tensor,
                  y: torch.Tensor) -> Callable[[], None]:
    torch.manual_seed(0)
    model = build_model(architecture, width=width)
    defense = build_defense(kind, defense_params(kind, params))
    defense.prepare(TrainContext(train_model=lambda fn, s: None, total_steps=TOTAL_STEPS))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        model.train()
        loss = defense.loss(model, x, y, TOTAL_STEPS - 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def ig_cases(width: float, x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], object]]:
    torch.manual_seed(0)
    model = build_model("ross_cnn", width=width).eval()

    def plain_gradient() -> object:
        return logit_gradient(model, x, y)

    def ig(m: int, create_graph: bool) -> Callable[[], object]:
        def run() -> object:
            attribution = integrated_gradients(model, x, y, steps=m, create_graph=create_graph)
            if create_graph:
                attribution.abs().sum().backward()
                model.zero_grad(set_to_none=True)
            return attribution
        return run

    cases: dict[str, Callable[[], object]] = {"gradient": plain_gradient}
    for m in (10, 50):
        cases[f"ig{m}"] = ig(m, False)
        cases[f"ig{m}_graph"] = ig(m, True)
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    assert all(kind in DEFENSES for _, kind, _, _ in STEP_CASES)

    ds = load_embedded()
    x = torch.from_numpy(ds.images[: args.batch])
    y = torch.from_numpy(ds.labels[: args.batch]).long()
    load_before = os.getloadavg()[0]

    fns: dict[str, Callable[[], object]] = {}
    for i, (_, kind, params, arch) in enumerate(STEP_CASES):
        fns[f"step{i}"] = training_step(kind, params, arch, args.width, x, y)
    fns.update(ig_cases(args.width, x, y))
    t0 = time.perf_counter()
    times = interleaved_times(fns, args.repeats)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    med = {name: statistics.median(ts) for name, ts in times.items()}

    plain = {arch: f"step{i}" for i, (_, kind, _, arch) in enumerate(STEP_CASES) if kind == "normal"}
    rows = ["| model | training step (batch 64) | median seconds/step | ratio to plain (range) | "
            "500 steps at this load (min) |", "|---|---|---|---|---|"]
    for i, (label, kind, params, arch) in enumerate(STEP_CASES):  # noqa: B007
        t = med[f"step{i}"]
        rows.append(f"| {arch} | {label} | {t:.4f} | {paired_ratio(times[f'step{i}'], times[plain[arch]])} "
                    f"| {t * TOTAL_STEPS / 60:.1f} |")

    ig_rows = ["| integrated gradients (Ross CNN, batch 64) | median seconds | m plain input-gradient passes (s) "
               "| ratio (range) |", "|---|---|---|---|"]
    for m in (10, 50):
        for suffix, what in (("", "IG"), ("_graph", "IG, create_graph + backward to the weights")):
            name = f"ig{m}{suffix}"
            ig_rows.append(f"| {what}, m = {m} | {med[name]:.3f} | {m * med['gradient']:.3f} "
                           f"| {paired_ratio(times[name], times['gradient'], scale=m)} |")

    defaults = {kind: defense_params(kind, {}) for kind in ("ig_norm", "ig_sum_norm", "int", "int2", "etmann_gradreg")}
    body = "\n".join([
        "## Saliency and the interpretability defenses (`benchmarks/bench_saliency.py`)",
        "",
        f"{args.repeats} interleaved rounds after a warm-up each (a round runs every case once); ratios "
        f"are medians of within-round ratios, with their range across rounds; torch threads = "
        f"{torch.get_num_threads()}, width {args.width} (the demo's), embedded MNIST, batch {args.batch}; "
        f"each defense step is timed at the end of a {TOTAL_STEPS}-step run (epsilon/lambda ramps fully on). "
        f"The machine was shared with other jobs (1-min load average {load_before:.1f} before, "
        f"{load_after:.1f} after, on {os.cpu_count()} cores; whole run {wall:.0f} s), so absolute "
        f"seconds are inflated and noisy; the ratios, interleaved in one run, are what to compare.",
        "",
        *rows,
        "",
        *ig_rows,
        "",
        "A plain pass is forward + backward of the class logit to the input; IG evaluates all m path "
        "points in one batch of m x 64. Defaults timed: "
        + "; ".join(f"{k} {v}" for k, v in defaults.items()) + ".",
    ])
    print(body)
    write_section("bench_saliency", body)


if __name__ == "__main__":
    main()
