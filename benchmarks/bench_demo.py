"""Benchmark: `advlegit demo`'s first run (empty model cache, fresh folder), this checkout against an
older one, side by side on one machine; per-phase wall times, CPU time, load averages, and a check
that both wrote the same stimulus set. Writes the `bench_demo` section of BENCHMARKS.md; not a test.

    git worktree add /tmp/old-demo <commit> && ln -s $PWD/.venv /tmp/old-demo/.venv
    nice -n 10 .venv/bin/python benchmarks/bench_demo.py --old /tmp/old-demo [--config CFG] [--rounds 2]
        [--together] [--no-write]

--together starts the two runs at the same moment (both see the same load from other jobs);
without it they alternate (old, new, old, new, ...). Each run gets its own ADVLEGIT_CACHE_DIR, so
every run is a first run, and OMP_WAIT_POLICY is removed from its environment, so each checkout
runs with its own default.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import write_section  # noqa: E402

# Manifest fields that record when and with what the set was made, not what it holds.
PROVENANCE = ("created_utc",)
_GEN = re.compile(r"INFO generation\.pipeline: (model \d+/\d+|evaluating|interpretability|making stimuli|wrote)")
_STAGE = re.compile(r"^\[(\d)/\d\] (.*)")
PHASES = ("training", "evaluation", "interpretability", "stimuli, PNGs, figures", "db + studies", "server start",
          "bots", "export", "analysis")


@dataclass
class Run:
    label: str
    checkout: Path
    folder: Path
    lines: list[tuple[float, str]] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    rc: int = 0

    @property
    def out(self) -> Path:
        return self.folder / "demo"

    def phases(self) -> dict[str, float]:
        """Seconds per phase, from the time each stage's first line arrived."""
        marks: list[tuple[str, float]] = []
        for t, line in self.lines:
            if m := _GEN.search(line):
                what = m.group(1)
                name = {"evaluating": "evaluation", "interpretability": "interpretability",
                        "making stimuli": "stimuli, PNGs, figures", "wrote": "end of generate"}.get(
                    what, "training")
                if not marks or marks[-1][0] != name:
                    marks.append((name, t))
            elif m := _STAGE.match(line.strip()):
                k = int(m.group(1))
                name = {1: "training", 2: "db + studies", 3: "server start", 4: "bots", 5: "export",
                        6: "analysis"}[k]
                if not marks or marks[-1][0] != name:
                    marks.append((name, t))
        marks.append(("end", self.wall))
        out: dict[str, float] = {}
        for (name, t0), (_, t1) in itertools.pairwise(marks):
            if name != "end of generate":  # the verify + log line after the set is written: part of stimuli
                out[name] = out.get(name, 0.0) + t1 - t0
            else:
                out["stimuli, PNGs, figures"] = out.get("stimuli, PNGs, figures", 0.0) + t1 - t0
        return out


def start(run: Run, config: Path, port: int, bots: int) -> tuple[subprocess.Popen, threading.Thread, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(PYTHONPATH=str(run.checkout), ADVLEGIT_CACHE_DIR=str(run.folder / "cache"), PYTHONUNBUFFERED="1")
    cmd = ["nice", "-n", "10", str(run.checkout / ".venv" / "bin" / "python"), "-c",
           "import advlegit; advlegit.main()", "demo", "--no-serve", "--config", str(config), "-o", str(run.out),
           "--port", str(port), "--bots", str(bots)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=run.checkout, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")

    def read() -> None:  # the run ends when its output does (finish() may be called later, in --together)
        for line in proc.stdout:
            for part in line.split("\r"):
                if part.strip():
                    run.lines.append((time.monotonic() - t0, part.rstrip()))
                    if _GEN.search(part) or _STAGE.match(part.strip()):  # progress survives an interrupted run
                        print(f"  {run.label} {run.lines[-1][0]:7.0f} s  {part.strip()[:100]}", flush=True)
        run.wall = time.monotonic() - t0

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, reader, t0


def finish(run: Run, proc: subprocess.Popen, reader: threading.Thread, t0: float) -> None:
    _, status, usage = os.wait4(proc.pid, 0)  # the demo waits for its children: their CPU time counts
    reader.join(timeout=10)
    run.cpu = usage.ru_utime + usage.ru_stime
    run.rc = os.waitstatus_to_exitcode(status)
    proc.returncode = run.rc
    if run.rc != 0:
        tail = "\n".join(line for _, line in run.lines[-15:])
        raise SystemExit(f"{run.label} demo failed (exit {run.rc}):\n{tail}")


def manifest_difference(a: Path, b: Path) -> list[str]:
    """Keys (dotted) where two stimulus sets differ, provenance fields aside; [] when the same."""
    diffs: list[str] = []

    def walk(x, y, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if where == "manifest.json" and k in PROVENANCE:
                    continue
                walk(x.get(k), y.get(k), f"{where}.{k}" if where else k)
        elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{where}[{i}]")
        elif x != y:
            diffs.append(where)

    for name in ("manifest.json", "metrics.json"):
        walk(json.loads((a / name).read_text()), json.loads((b / name).read_text()), name)
    return diffs


def load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", type=Path, required=True, help="checkout of the code to compare against")
    ap.add_argument("--config", type=Path, default=ROOT / "examples" / "mnist-demo.toml")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--bots", type=int, default=30)
    ap.add_argument("--together", action="store_true", help="start old and new at the same moment")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    config = args.config.resolve()
    runs: list[Run] = []
    loads: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        for r in range(args.rounds):
            pair = [Run("old", args.old.resolve(), Path(tmp) / f"old{r}"), Run("new", ROOT, Path(tmp) / f"new{r}")]
            if r % 2:
                pair.reverse()  # alternate who goes first
            loads.append(load())
            if args.together:
                started = [(run, *start(run, config, 5700 + 10 * r + i, args.bots)) for i, run in enumerate(pair)]
                for run, proc, reader, t0 in started:
                    finish(run, proc, reader, t0)
            else:
                for i, run in enumerate(pair):
                    finish(run, *start(run, config, 5700 + 10 * r + i, args.bots))
                    print(f"round {r + 1} {run.label}: {run.wall:.0f} s wall, {run.cpu:.0f} s CPU, load {load()}",
                          flush=True)
            loads.append(load())
            diffs = manifest_difference(pair[0].out / "stimuli", pair[1].out / "stimuli")
            print(f"round {r + 1}: " + ", ".join(f"{x.label} {x.wall:.0f} s wall / {x.cpu:.0f} s CPU" for x in pair)
                  + f"; stimulus sets differ in {len(diffs)} fields {diffs[:5]}", flush=True)
            for run in pair:
                run.lines.append((run.wall, f"DIFFS {len(diffs)}"))
            runs += pair
            body = report(runs, args, config, loads)  # after every round: a long run keeps what it measured
            print(body, flush=True)
            if not args.no_write:
                write_section("bench_demo", body)


def report(runs: list[Run], args, config: Path, loads: list[str]) -> str:
    old = [r for r in runs if r.label == "old"]
    new = [r for r in runs if r.label == "new"]
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    rows = ["| phase | " + " | ".join(f"{r.label} #{i // 2 + 1}" for i, r in enumerate(runs)) + " | old/new (median) |",
            "|---|" + "---|" * len(runs) + "---|"]
    per = [r.phases() for r in runs]
    for phase in PHASES:
        vals = [p.get(phase, 0.0) for p in per]
        o = med([p.get(phase, 0.0) for p, r in zip(per, runs, strict=True) if r.label == "old"])
        n = med([p.get(phase, 0.0) for p, r in zip(per, runs, strict=True) if r.label == "new"])
        rows.append(f"| {phase} | " + " | ".join(f"{v:.0f}" for v in vals) + f" | {o / n:.2f}× |" if n else
                    f"| {phase} | " + " | ".join(f"{v:.0f}" for v in vals) + " | – |")
    ow, nw = med([r.wall for r in old]), med([r.wall for r in new])
    oc, nc = med([r.cpu for r in old]), med([r.cpu for r in new])
    rows.append("| **whole first run, wall s** | " + " | ".join(f"**{r.wall:.0f}**" for r in runs)
                + f" | **{ow / nw:.2f}×** |")
    rows.append("| CPU s (user+sys, all children) | " + " | ".join(f"{r.cpu:.0f}" for r in runs)
                + f" | {oc / nc:.2f}× |")
    same = all(line.endswith("DIFFS 0") for r in runs for _, line in r.lines[-1:])
    how = "started together (both under the same load)" if args.together else "alternating"
    return "\n".join([
        "## demo first run, before/after (`benchmarks/bench_demo.py`, issue 16)", "",
        f"`advlegit demo --no-serve --config {config.relative_to(ROOT) if config.is_relative_to(ROOT) else config}"
        f" --bots {args.bots}`, each run with an empty model cache and a fresh folder; old = `{args.old}`"
        f" (the code before), new = this checkout; {len(runs) // 2} round(s), {how}, under `nice -n 10`. "
        f"Load average (1/5/15 min) before/after each round: {'; '.join(loads)} on {os.cpu_count()} cores "
        "shared with other engineers' jobs. Phases from the time each stage's first log line arrived (seconds).",
        "", *rows, "",
        "Stimulus sets (manifest.json and metrics.json, `created_utc` aside) of old and new: "
        + ("**identical** in every round." if same else "**differ** (see the run's output)."),
    ])


if __name__ == "__main__":
    main()
