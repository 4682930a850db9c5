"""Benchmark: a full `advlegit analyze` report on 100,000 simulated identify responses
(1,000 participants × 100 trials, 6 defenses). Reports wall time and peak memory; not a test.

    .venv/bin/python benchmarks/bench_analysis.py [--r-crosscheck auto|off] [--keep DIR]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--r-crosscheck", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--keep", help="Write the report here instead of a temporary directory.")
    args = ap.parse_args()
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
