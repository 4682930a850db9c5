"""Benchmark: the cost of a Start (allocation) on a 20,000-stimulus set, on PostgreSQL. Not a test:
numbers go to BENCHMARKS.md (section bench_start). Issue 17, item 5.

1. In process, 1,000 participants started one after another through the steps of the Start view
   (participant/views.py: prepare_start, the study's lock, allocate, in_task, commit); most of them
   then finish. Per Start: wall time and the time the study's lock is held, by participant number.
   The previous allocator (every image loaded, the rescan of every counted trial, a min-cost flow over
   the whole pool) is timed beside it at a few participant counts, in a transaction that is rolled back.
2. Over HTTP, against `advlegit serve --production` (gunicorn): 500 arrivals spread over 60 s, each
   entry -> consent -> Start -> trial list; Start latency p50/p95/max, and the fill balance afterwards.

   With --phases, every worker logs each request's time inside the app and the Start view's steps
   (start_phases.py); with --old DIR, runs of another checkout's app (e.g. `git worktree add /tmp/old
   <commit>`) are interleaved with this one's, on copies of one template database.

    nice -n 10 .venv/bin/python benchmarks/bench_start.py [--groups 5000] [--participants 1000] [--arrivals 500]
        [--http-only] [--phases] [--old DIR] [--rounds 1] [--stimuli DIR] [--template DB] [--no-write]

PostgreSQL: fresh databases on $ADVLEGIT_TEST_DATABASE_URL's server, dropped afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "study_app"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_load  # noqa: E402
from _report import write_section  # noqa: E402


@contextmanager
def tolerant(cm):
    """A fresh database whose drop may fail (another role's backend still attached): the numbers stand."""
    url = cm.__enter__()
    try:
        yield url
    finally:
        try:
            cm.__exit__(None, None, None)
        except Exception as exc:  # noqa: BLE001
            print(f"could not drop the benchmark database: {exc}", file=sys.stderr)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def setup(tmp: Path, url: str, stimuli: Path) -> str:
    from click.testing import CliRunner
    from study_fixtures import write_design

    from advlegit.study_app.cli import cli

    env = {"DATABASE_URL": url, "ADVLEGIT_INSTANCE": str(tmp / "inst")}
    res = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert res.exit_code == 0, res.output
    design = write_design(tmp / "design.toml", "identify", trials=20, target=1_000_000)
    res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(stimuli), "--design", str(design)], env=env)
    assert res.exit_code == 0, res.output
    return res.output.strip().splitlines()[-1]


def legacy_start(study) -> None:
    """The allocator before fill rows, up to its plan (what it did under the lock)."""
    from sqlalchemy import select
    from sqlalchemy.orm import defer

    from advlegit.study_app import allocation
    from advlegit.study_app.db import db
    from advlegit.study_app.design import Design
    from advlegit.study_app.models import Image

    design = Design.from_dict(study.design)
    lock = allocation.lock_study(study.id)
    images = db.session.scalars(select(Image).options(defer(Image.png))
                                .where(Image.stimulus_set_id == study.stimulus_set_id)).all()
    items, clean = allocation.build_pool(design, images)
    counts = allocation.fill_counts(study, design)
    allocation.plan_trials(design, items, clean, counts, study.seed * 100_003 + lock.n_allocated)


def in_process(url: str, study_id: str, tmp: Path, n: int, legacy_at: set[int]) -> dict:
    from study_fixtures import make_app

    from advlegit.study_app import allocation
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant, Study
    from advlegit.study_app.states import enter, transition

    app = make_app(url, tmp / "inst-bench")
    rng = random.Random(1)
    out = {"start_ms": [], "lock_ms": [], "legacy": {}}
    with app.app_context():
        for k in range(1, n + 1):
            p = Participant(id=f"pb{k:08d}", study_id=study_id, access_token=f"tok{k:08d}", platform="anonymous",
                            state="entered", created_at=utcnow(), last_seen_at=utcnow())
            db.session.add(p)
            enter(p)
            transition(p, "consented")
            transition(p, "instructed")
            db.session.commit()
            if k in legacy_at:
                times = []
                for _ in range(3):
                    study = db.session.get(Study, study_id)
                    allocation.begin_allocation()
                    t0 = time.perf_counter()
                    legacy_start(study)
                    times.append((time.perf_counter() - t0) * 1000)
                    db.session.rollback()
                out["legacy"][k] = statistics.median(times)
            t0 = time.perf_counter()
            study = db.session.get(Study, study_id)
            allocation.prepare_start(study)
            allocation.begin_allocation()
            allocation.lock_study(study.id)
            t_lock = time.perf_counter()
            p = db.session.get(Participant, p.id)
            allocation.allocate(p)
            transition(p, "in_task", "allocated")
            db.session.commit()
            t1 = time.perf_counter()
            out["start_ms"].append((t1 - t0) * 1000)
            out["lock_ms"].append((t1 - t_lock) * 1000)
            if rng.random() < 0.7:  # most finish; the rest stay in task and count until they time out
                transition(p, "data_complete", "bench")
                db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return out


async def arrivals(base: str, study: str, n: int, seconds: float) -> tuple[bench_load.Stats, int]:
    stats = bench_load.Stats()
    people = [bench_load.Participant(base, study, 100_000 + i) for i in range(n)]
    failed = 0
    async with bench_load.session(n + 8) as s:
        async def one(i, p):
            nonlocal failed
            await asyncio.sleep(seconds * i / n)
            try:
                await p.start(s, stats)
            except Exception:  # noqa: BLE001  (counted and reported)
                failed += 1
        await asyncio.gather(*(one(i, p) for i, p in enumerate(people)))
    return stats, failed


def balance(url: str, study_id: str) -> tuple[int, int]:
    """(participants allocated, the largest spread of fills within one cell)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as c:
        n = c.execute(text("SELECT count(*) FROM allocation_logs WHERE study_id = :s"), {"s": study_id}).scalar()
        spread = c.execute(text("SELECT max(hi - lo) FROM (SELECT max(n) hi, min(n) lo FROM fill_counts "
                                "WHERE study_id = :s GROUP BY cell) x"), {"s": study_id}).scalar()
    engine.dispose()
    return n, spread


@contextmanager
def copy_of(admin_url: str, template: str):
    """A new database copied from `template` (PostgreSQL copies the files: seconds, where importing the
    20,000-stimulus set takes minutes on a loaded machine), dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from study_fixtures import _drop_database

    name = f"advlegit_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:  # a template must have no other session: the setup's pooled ones end here
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                       "AND usename = current_user AND pid <> pg_backend_pid()"), {"n": template})
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def http_run(tmp: Path, admin: str, template: str, study: str, root: Path, args, tag: str) -> dict:
    """One HTTP phase against the app of checkout `root`, in a copy of the template database (schema,
    set and study made once); with --phases, the Start view's steps as timed inside the workers
    (start_phases.py)."""

    phases = tmp / f"phases-{tag}"
    phases.mkdir()
    with tolerant(copy_of(admin, template)) as url:
        load_before = bench_load.loadavg()
        server = bench_load.Server(url, tmp / f"inst-{tag}", args.workers, args.threads, tmp / f"server-{tag}.log",
                                   root=root, preamble="import start_phases; start_phases.install()",
                                   env={"ADVLEGIT_START_PHASES": str(phases)} if args.phases else None, boot_s=300)
        try:
            t0 = time.perf_counter()
            stats, failed = asyncio.run(arrivals(server.url, study, args.arrivals, args.seconds))
            took = time.perf_counter() - t0
        finally:
            server.stop()
        load_after = bench_load.loadavg()
        n, spread = balance(url, study)
    requests = [json.loads(line) for f in sorted(phases.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return {"tag": tag, "start": stats.latency["start"], "all": stats.latency, "failed": failed, "allocated": n,
            "spread": spread, "load": (load_before, load_after), "took": took, "requests": requests,
            "marks": [m for m in requests if m["request"] == "POST instructions"]}


def request_table(runs: list[dict]) -> str:
    """Per run and kind of request: how many, the app's time on them in all (thread-seconds) and p50/p95."""
    rows = ["| run | request | n | app time in all (s) | app p50 (ms) | app p95 (ms) |", "|---|---|---|---|---|---|"]
    for r in runs:
        by: dict[str, list[float]] = defaultdict(list)
        for m in r["requests"]:
            by[m["request"]].append(m["total"])
        for name, xs in sorted(by.items(), key=lambda kv: -sum(kv[1])):
            rows.append(f"| {r['tag']} | {name} | {len(xs)} | {sum(xs) / 1000:.1f} | {pct(xs, .5):.0f} | "
                        f"{pct(xs, .95):.0f} |")
    return "\n".join(rows)


def phase_table(runs: list[dict]) -> str:
    """p50/p95 of each timed step, per run: inside the app vs as the client saw it."""
    steps = ["total", "prepare_start", "time_out_stale", "pool_of", "lock_study", "allocate", "rest"]
    for r in runs:
        for m in r["marks"]:  # the view's own steps: the participant's row, the transition, the commit
            m["rest"] = m["total"] - sum(m.get(k, 0.0) for k in ("prepare_start", "begin_allocation", "lock_study",
                                                                   "allocate"))
    head = "| run | client Start p50/p95 | " + " | ".join(f"{s} p50/p95" for s in steps) + " |"
    rows = [head, "|" + "---|" * (len(steps) + 2)]
    for r in runs:
        cells = []
        for s in steps:
            xs = [m[s] for m in r["marks"] if s in m]
            cells.append(f"{pct(xs, .5):.0f} / {pct(xs, .95):.0f}" if xs else "–")
        c = [x * 1000 for x in r["start"]]
        rows.append(f"| {r['tag']} | {pct(c, .5):.0f} / {pct(c, .95):.0f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def durable(url: str) -> None:
    """Commits wait for the WAL fsync, as in production: the test fixture's databases turn that off
    (HTTP runs copy a template, and a copy does not inherit that setting)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f'ALTER DATABASE "{make_url(url).database}" SET synchronous_commit = on'))
    engine.dispose()


def old_commit(root: Path) -> str:
    import subprocess

    res = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return res.stdout.strip() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=5000, help="source digits attacked (x4 defenses = stimuli)")
    ap.add_argument("--participants", type=int, default=1000)
    ap.add_argument("--arrivals", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--http-only", action="store_true", help="skip the in-process phase")
    ap.add_argument("--stimuli", type=Path, help="a stimulus-set folder to reuse (written there if absent)")
    ap.add_argument("--old", type=Path, help="another checkout (e.g. a git worktree of an older commit): its app "
                    "is served in HTTP runs interleaved with this one's")
    ap.add_argument("--rounds", type=int, default=1, help="HTTP runs per checkout")
    ap.add_argument("--phases", action="store_true", help="time the Start view's steps inside the workers")
    ap.add_argument("--template", help="a database on the same server holding the schema, the set and one study "
                    "that nobody has started (the HTTP runs copy it instead of importing the set again)")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    admin = os.environ.get("ADVLEGIT_TEST_DATABASE_URL")
    if not admin:
        sys.exit("set ADVLEGIT_TEST_DATABASE_URL to a PostgreSQL server (scripts/start-postgres.sh)")
    from study_fixtures import fresh_postgres_database, write_stimulus_set

    legacy_at = {1, args.participants // 4, args.participants // 2, args.participants}
    seq = None
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        stimuli = args.stimuli or tmp / "stimuli"
        if not (stimuli / "manifest.json").exists():  # MNIST stand-in: 5,000 digits in all
            stimuli = write_stimulus_set(stimuli, n_groups=args.groups, n_extra_sources=0)
        if not args.http_only:
            with tolerant(fresh_postgres_database(admin)) as url:
                durable(url)
                study = setup(tmp, url, stimuli)
                print(f"set and study ready in {time.perf_counter() - t0:.0f} s", flush=True)
                seq = in_process(url, study, tmp, args.participants, legacy_at)
                print("in process done", flush=True)
                print({k: statistics.median(v) for k, v in seq.items() if k != "legacy"}, seq["legacy"], flush=True)
                n_seq, spread_seq = balance(url, study)
        runs = []
        with tolerant(nullcontext(None) if args.template else fresh_postgres_database(admin)) as template_url:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            if args.template:  # made by an earlier run's setup: the set and one study, nobody started
                template = args.template
                engine = create_engine(make_url(admin).set(database=template))
                with engine.connect() as c:
                    study2 = c.execute(text("SELECT id FROM studies")).scalar_one()
                engine.dispose()
            else:
                study2 = setup(tmp / "http", template_url, stimuli)
                template = make_url(template_url).database
            print(f"template database ready in {time.perf_counter() - t0:.0f} s", flush=True)
            for k in range(args.rounds):
                for tag, root in ([("before", args.old)] if args.old else []) + [("after", ROOT)]:
                    r = http_run(tmp, admin, template, study2, root.resolve(), args, f"{tag}{k + 1}")
                    c = [x * 1000 for x in r["start"]]
                    print(f"{r['tag']}: Start p50 {pct(c, .5):.0f} p95 {pct(c, .95):.0f} ms, load {r['load']}, "
                          f"failed {r['failed']}, allocated {r['allocated']}, spread {r['spread']}", flush=True)
                    runs.append(r)
        if args.phases:
            print(phase_table(runs), request_table(runs), sep="\n\n", flush=True)

    http_rows = ["| run | load avg before → after | Start p50 (ms) | Start p95 (ms) | Start max (ms) "
                 "| other pages p95 (ms) | failed | allocated | fill spread within a cell |",
                 "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        http = r["start"]
        pages = [x for name, xs in r["all"].items() if name != "start" for x in xs]
        http_rows.append(f"| {r['tag']} | {r['load'][0]} → {r['load'][1]} | {pct(http, .5) * 1000:.0f} | "
                         f"{pct(http, .95) * 1000:.0f} | {max(http) * 1000 if http else float('nan'):.0f} | "
                         f"{pct(pages, .95) * 1000:.0f} | {r['failed']} | {r['allocated']} | {r['spread']} |")
    n_stimuli = args.groups * 4
    body = f"""## bench_start — a Start on a {n_stimuli:,}-stimulus set (issue 17, item 5)

PostgreSQL on loopback, commits durable (synchronous_commit on); identify design, 20 main trials (5 per
defense), 4 defenses. The machine has 2 cores, at times shared with other engineers' work: the load
average (1/5/15 min) is given per run.
"""
    if seq is not None:
        starts = seq["start_ms"]
        blocks = [(a, min(a + 99, len(starts))) for a in range(1, len(starts) + 1, 100)]
        rows = ["| participants | Start p50 (ms) | Start p95 (ms) | lock held p50 (ms) | lock held p95 (ms) |",
                "|---|---|---|---|---|"]
        for a, b in blocks:
            s, lk = starts[a - 1:b], seq["lock_ms"][a - 1:b]
            rows.append(f"| {a}–{b} | {pct(s, .5):.1f} | {pct(s, .95):.1f} | {pct(lk, .5):.1f} | {pct(lk, .95):.1f} |")
        legacy_rows = ["| participants before | previous allocator (ms, median of 3) "
                       "| this allocator (ms, that Start) |", "|---|---|---|"]
        for k in sorted(seq["legacy"]):
            legacy_rows.append(f"| {k - 1} | {seq['legacy'][k]:.0f} | {starts[k - 1]:.1f} |")
        body += f"""
**1. In process, {len(starts)} participants one after another** (the Start view's steps; 70% finish):

{chr(10).join(rows)}

The previous allocator on the same database (up to its plan, under the lock, rolled back):

{chr(10).join(legacy_rows)}

Fill spread within a cell after {n_seq} allocations: {spread_seq} (0 or 1 is level).
"""
    interleaved = f"; before = commit {old_commit(args.old)} ({args.old}), runs interleaved" if args.old else ""
    body += f"""
**2. Over HTTP: {args.arrivals} arrivals spread over {args.seconds:.0f} s** (gunicorn {args.workers} workers × \
{args.threads} threads; entry → consent → Start → trial list){interleaved}:

{chr(10).join(http_rows)}
"""
    if args.phases:
        body += f"""
Inside the workers (ms; `total` is the app's whole handling of the Start request, the client's time
minus it is the wait in gunicorn and on the wire):

{phase_table(runs)}

The app's time per kind of request (the thread-seconds its workers spent inside the app):

{request_table(runs)}
"""
    body += """
Target (issue 17): Start p95 < 200 ms with 500 arrivals within 60 s on a 20,000-stimulus set.
"""
    print(body)
    if not args.no_write:
        write_section("bench_start", body)


if __name__ == "__main__":
    main()
