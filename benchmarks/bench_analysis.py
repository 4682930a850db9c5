"""Benchmark: a full `advlegit analyze` report on 100,000 simulated identify responses
(1,000 participants × 100 trials, 6 defenses), the mixed model on every response (no subsampling).
Writes wall time, CPU time, peak memory, the load average and where the time went (inclusive time
per analysis function) to BENCHMARKS.md (section bench_analysis); not a test.

    .venv/bin/python benchmarks/bench_analysis.py [--r-crosscheck auto|off] [--keep DIR]
    .venv/bin/python benchmarks/bench_analysis.py --mixed-only [--engine python|r|auto]

--mixed-only times the mixed model alone (analysis.mixed.fit_mixed, target_hit ~ defense +
(1|participant) + (1|image), every main response, no subsampling) in a child process and writes
wall time, CPU time and the child's peak RSS to BENCHMARKS.md (section bench_analysis_mixed).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from advlegit.analysis.simulate import SimDesign, simulate, write_export  # noqa: E402

DESIGN = SimDesign(
    defenses=("normal", "gradreg_y", "gradreg_insensitive", "adv_fgsm", "distilled", "gradreg_adv"),
    effects={"gradreg_y": 0.6, "gradreg_insensitive": 0.3, "adv_fgsm": 0.2, "distilled": -0.2},
    n_participants=1000, trials_per_participant=100, n_groups=300, attacks=("tgsm", "itgsm"),
    budgets=(0.1, 0.2, 0.3), budget_slope=1.0, n_practice=3, n_attention=5, inattentive_rate=0.03,
    incomplete_rate=0.02, review_excluded_rate=0.01, models=("normal", "gradreg_y", "rater"))


_FIT_CHILD = r"""
import pickle, resource, sys, time
from advlegit.analysis.mixed import fit_mixed
d = pickle.load(open(sys.argv[1], "rb"))
t, c = time.perf_counter(), time.process_time()
res = fit_mixed(d, "target_hit", family="binomial", fixed="defense", reference="normal",
                random=["participant_id", "stimulus_id"], alpha=0.05, engine=sys.argv[2])
wall, cpu = time.perf_counter() - t, time.process_time() - c
print(res.summary())
print(f"RESULT {wall:.1f} {cpu:.1f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {res.nobs} "
      f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f}")
"""


def mixed_only(engine: str, write: bool) -> None:
    import pickle
    df = simulate(DESIGN, seed=1)
    d = df[(df["trial_kind"] == "main") & df["target_hit"].notna()]
    d = d[["participant_id", "stimulus_id", "group", "defense", "target_hit"]].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "d.pkl"
        pickle.dump(d, open(f, "wb"))
        out = subprocess.run([sys.executable, "-c", _FIT_CHILD, str(f), engine], check=True, cwd=ROOT,
                             capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")).stdout
    print(out)
    wall, cpu, rss, nobs, rss_r = out.strip().splitlines()[-1].split()[1:]
    load = os.getloadavg()[0]
    text = (f"## Mixed model at 100k responses (benchmarks/bench_analysis.py --mixed-only --engine {engine})\n\n"
            f"`fit_mixed(target_hit ~ defense + (1|participant) + (1|image))` on all {int(nobs):,} main "
            f"responses of the bench_analysis design (1,000 participants, 1,800 images), no subsampling.\n\n"
            "| engine | wall s | CPU s (fit process) | peak RSS MiB (fit process) | peak RSS MiB (R child) "
            "| load average |\n"
            f"|---|---|---|---|---|---|\n| {engine} | {wall} | {cpu} | {rss} | {rss_r if rss_r != '0' else '–'} "
            f"| {load:.1f} |\n\n"
            "The Python engine runs single-threaded BLAS (OPENBLAS_NUM_THREADS=1); wall time depends on the "
            "machine's load, CPU time much less.")
    if write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _report import write_section
        write_section(f"bench_analysis_mixed_{engine}", text)


_ANALYZE_CHILD = r"""
import functools, inspect, json, sys, time
import advlegit
from advlegit.analysis import (agreement, compare, designs, exclusions, figures, identify, load, mixed, pipeline, plain,
                      prereg, rate, report, stats)
spent = {}
def timed(mod, name, f):
    @functools.wraps(f)
    def g(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return f(*a, **k)
        finally:
            s = spent.setdefault(f"{mod.__name__}.{name}", [0.0, 0.0, 0])
            s[0] += time.perf_counter() - t; s[1] += time.process_time() - c; s[2] += 1
    return g
for mod in (agreement, compare, designs, exclusions, figures, identify, load, mixed, pipeline, plain, prereg,
            rate, report, stats):
    for name, f in list(vars(mod).items()):
        if inspect.isfunction(f) and f.__module__ == mod.__name__:
            setattr(mod, name, timed(mod, name, f))
try:
    advlegit.main(sys.argv[2:], standalone_mode=False)
finally:
    json.dump(spent, open(sys.argv[1], "w"))
"""


def full_report(r_crosscheck: str, keep: str | None, write: bool, participants: int) -> None:
    import dataclasses
    import json
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        t = time.perf_counter()
        df = simulate(dataclasses.replace(DESIGN, n_participants=participants), seed=1)
        write_export(df, export)
        n_main = int((df["trial_kind"] == "main").sum())
        print(f"simulated {len(df):,} rows ({n_main:,} main responses) in {time.perf_counter() - t:.1f} s")
        out = Path(keep) if keep else Path(tmp) / "report"
        spent_file = Path(tmp) / "spent.json"
        cmd = [sys.executable, "-c", _ANALYZE_CHILD, str(spent_file), "analyze", str(export), "-o", str(out),
               "--r-crosscheck", r_crosscheck]
        load_before = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        wall = time.perf_counter() - t
        load_after = os.getloadavg()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = json.loads(spent_file.read_text())
        md = (out / "report.md").read_text()
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = after.ru_maxrss / 1024  # the largest child (the analyze process, or R if larger), MiB
    subsampled = "SUBSAMPLE" in md or "subsample" in md.split("## In plain words")[0].lower()
    top = sorted(spent.items(), key=lambda kv: -kv[1][0])
    rows = [f"| `{k}` | {v[0]:.1f} | {v[1]:.1f} | {v[2]} |" for k, v in top][:14]
    la = lambda x: " / ".join(f"{v:.1f}" for v in x)  # noqa: E731
    text = "\n".join([
        "## Full report at 100k responses (benchmarks/bench_analysis.py)", "",
        f"`advlegit analyze` on {n_main:,} main identify responses ({participants:,} participants × 100 trials, "
        f"6 defenses, 1,800 images), defaults (`--r-crosscheck {r_crosscheck}`: R is skipped at this size), "
        "the mixed model "
        f"on every response ({'SUBSAMPLED: see the report' if subsampled else 'no subsampling'}).", "",
        "| wall s | CPU s (user+sys, analyze process and its children) | peak RSS MiB | cores "
        "| load average before (1/5/15 min) | after |",
        "|---|---|---|---|---|---|",
        f"| {wall:.1f} | {cpu:.1f} | {peak:.0f} | {os.cpu_count()} | {la(load_before)} | {la(load_after)} |", "",
        f"BLAS threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; niceness "
        f"{os.nice(0)}.", "",
        "Acceptance: under 30 s wall on an idle 2-core machine, peak under 1 GiB. The machine was not idle "
        "(load average above); the CPU time is the better guide to an idle machine's wall time (the analysis is "
        "mostly single-threaded, so idle wall ≈ CPU time).", "",
        "Where the time went (inclusive: a function's time includes the functions it calls, so rows overlap; "
        "`run_analysis` is the whole analysis, the rest of the CPU time is start-up imports, reading the export "
        "and writing the report):", "",
        "| function | wall s | CPU s | calls |", "|---|---|---|---|", *rows])
    print(text)
    if write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _report import write_section
        write_section("bench_analysis", text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--r-crosscheck", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--keep", help="Write the report here instead of a temporary directory.")
    ap.add_argument("--mixed-only", action="store_true", help="Time the full-data mixed model alone.")
    ap.add_argument("--engine", default="python", choices=["python", "r", "auto"])
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--participants", type=int, default=1000, help="fewer for a smoke run (use with --no-write)")
    args = ap.parse_args()
    if args.mixed_only:
        mixed_only(args.engine, not args.no_write)
        return
    full_report(args.r_crosscheck, args.keep, not args.no_write and args.participants == 1000, args.participants)


if __name__ == "__main__":
    main()
