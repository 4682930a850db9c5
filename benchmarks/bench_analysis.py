"""Benchmark: a full `advlegit analyze` report on 100,000 simulated identify responses
(1,000 participants × 100 trials, 6 defenses). Reports wall time and peak memory; not a test.

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

from analysis.simulate import SimDesign, simulate, write_export  # noqa: E402

DESIGN = SimDesign(
    defenses=("normal", "gradreg_y", "gradreg_insensitive", "adv_fgsm", "distilled", "gradreg_adv"),
    effects={"gradreg_y": 0.6, "gradreg_insensitive": 0.3, "adv_fgsm": 0.2, "distilled": -0.2},
    n_participants=1000, trials_per_participant=100, n_groups=300, attacks=("tgsm", "itgsm"),
    budgets=(0.1, 0.2, 0.3), budget_slope=1.0, n_practice=3, n_attention=5, inattentive_rate=0.03,
    incomplete_rate=0.02, review_excluded_rate=0.01, models=("normal", "gradreg_y", "rater"))


_FIT_CHILD = r"""
import pickle, resource, sys, time
from analysis.mixed import fit_mixed
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
            f"| engine | wall s | CPU s (fit process) | peak RSS MiB (fit process) | peak RSS MiB (R child) | load average |\n"
            f"|---|---|---|---|---|---|\n| {engine} | {wall} | {cpu} | {rss} | {rss_r if rss_r != '0' else '–'} | {load:.1f} |\n\n"
            "The Python engine runs single-threaded BLAS (OPENBLAS_NUM_THREADS=1); wall time depends on the "
            "machine's load, CPU time much less.")
    if write:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _report import write_section
        write_section(f"bench_analysis_mixed_{engine}", text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--r-crosscheck", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--keep", help="Write the report here instead of a temporary directory.")
    ap.add_argument("--mixed-only", action="store_true", help="Time the full-data mixed model alone.")
    ap.add_argument("--engine", default="python", choices=["python", "r", "auto"])
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.mixed_only:
        mixed_only(args.engine, not args.no_write)
        return
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        t = time.perf_counter()
        df = simulate(DESIGN, seed=1)
        write_export(df, export)
        print(f"simulated {len(df):,} rows ({(df['trial_kind'] == 'main').sum():,} main responses) "
              f"in {time.perf_counter() - t:.1f} s")
        out = Path(args.keep) if args.keep else Path(tmp) / "report"
        cmd = [sys.executable, "-c", "import advlegit; advlegit.main()", "analyze", str(export), "-o", str(out),
               "--r-crosscheck", args.r_crosscheck]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    # ru_maxrss of children: the largest single child (the analyze process, or R if larger), in KiB
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"analyze wall time: {wall:.1f} s; CPU time (analyze + R, user+sys): {cpu:.1f} s; peak RSS of the largest child process: {peak:.0f} MiB; "
          f"CPUs: {os.cpu_count()}; load average before/after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
