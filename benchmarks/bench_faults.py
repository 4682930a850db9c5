"""Benchmark: faults during load. Participants go through the whole flow over HTTP (bench_load's asyncio
client, retrying like task.js with the same UUIDs) against `advlegit serve --production` + PostgreSQL;
mid-run one gunicorn worker is killed with SIGKILL, later PostgreSQL is restarted (`pg_ctl restart -m
fast`, what `pg_ctlcluster VER main restart` runs). Afterwards the acknowledged answers are compared
with the table: lost, duplicated, stored-but-unacknowledged; and every participant must have finished.
Numbers go to BENCHMARKS.md (section bench_load, after the load numbers).

    .venv/bin/python benchmarks/bench_faults.py [--participants 150] [--system-cluster] [--no-write]

By default PostgreSQL is a private throwaway server (initdb in /tmp), so restarting it cannot disturb
anything else; --system-cluster restarts the cluster behind $ADVLEGIT_TEST_DATABASE_URL with
pg_ctlcluster instead.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_load as B  # noqa: E402


async def scenario(base: str, study: str, n: int, stats: B.Stats, expected: int, faults: dict, server, restart):
    people = [B.Participant(base, study, 50_000 + i) for i in range(n)]
    done = []

    async def person(p, delay):
        await asyncio.sleep(delay)
        async with B.session(4) as s:
            await p.start(s, stats)
            await p.answer_all(s, stats, (0.2, 0.8))
            await p.finish(s, stats)
        done.append(p.token)

    async def monitor():
        while len(stats.acked) < expected * 0.25:
            await asyncio.sleep(0.02)
        victim = server.workers()[0]
        faults["kill_at_acks"] = len(stats.acked)
        faults["kill_t"] = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        faults["killed"] = victim
        while len(stats.acked) < expected * 0.55:
            await asyncio.sleep(0.02)
        faults["restart_at_acks"] = len(stats.acked)
        t0 = time.perf_counter()
        await asyncio.to_thread(restart)
        faults["restart_s"] = time.perf_counter() - t0
        faults["restart_t0"], faults["restart_t1"] = t0, time.perf_counter()

    t0 = time.perf_counter()
    mon = asyncio.create_task(monitor())
    await asyncio.gather(*(person(p, random.uniform(0, 4)) for p in people))
    await mon
    return time.perf_counter() - t0, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, default=150)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--system-cluster", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    random.seed(0)
    from study_fixtures import PrivatePostgres

    load_before = B.loadavg()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        if args.system_cluster:
            admin = os.environ.get("ADVLEGIT_TEST_DATABASE_URL") or sys.exit("set ADVLEGIT_TEST_DATABASE_URL")
            ver = sorted(Path("/usr/lib/postgresql").iterdir(), key=lambda p: int(p.name))[-1].name
            pg_cm = None

            def restart():
                subprocess.run(["pg_ctlcluster", ver, "main", "restart"], check=True)
            db_cm = B.study_database(tmp, admin)
        else:
            pg_cm = PrivatePostgres().__enter__()
            restart = pg_cm.restart
            db_cm = B.study_database(tmp, db_url=pg_cm.url)
        try:
            with db_cm as (db_url, study):
                server = B.Server(db_url, tmp / "inst", args.workers, args.threads, tmp / "server.log")
                stats, faults = B.Stats(), {}
                try:
                    wall, done = asyncio.run(scenario(server.url, study, args.participants, stats,
                                                      args.participants * 12, faults, server, restart))
                    workers_after = server.workers()
                finally:
                    server.stop()
                n_rows, n_distinct, stored = B.count_rows(db_url)
                from sqlalchemy import create_engine, text

                engine = create_engine(db_url)
                with engine.connect() as c:
                    finished = c.execute(text("SELECT count(*) FROM participants WHERE state = 'code_issued'")).scalar()
                engine.dispose()
                log = (tmp / "server.log").read_text(errors="replace")
        finally:
            if pg_cm is not None:
                pg_cm.__exit__(None, None, None)

    acked = set(stats.acked)
    lost = len(acked - set(stored))
    unacked = len(set(stored) - acked)
    dup = n_rows - n_distinct
    times = sorted(stats.ack_times)
    gap = max((b - a for a, b in itertools.pairwise(times)), default=float("nan"))
    after_restart = [t for t in times if t > faults["restart_t1"]]
    recovery = (min(after_restart) - faults["restart_t1"]) if after_restart else float("nan")
    retries = dict(sorted(stats.retries.items()))
    body = "\n".join([
        "**Faults under load** (`benchmarks/bench_faults.py`): "
        f"{args.participants} participants arrive over 4 s and go through the whole flow (think time "
        "U(0.2, 0.8) s between answers) against the same production server "
        f"({args.workers} workers × {args.threads} threads); after {faults['kill_at_acks']} acknowledged answers one "
        f"gunicorn worker is killed with SIGKILL, after {faults['restart_at_acks']} PostgreSQL is restarted "
        f"({'pg_ctlcluster … restart' if args.system_cluster else 'private server, pg_ctl restart -m fast'}, "
        f"{faults['restart_s']:.1f} s). Clients retry like task.js (same UUID).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers acknowledged | {len(acked)} |",
        f"| rows in `responses` | {n_rows} ({n_distinct} distinct UUIDs) |",
        f"| acknowledged but missing (lost) | **{lost}** |",
        f"| stored twice (duplicated) | **{dup}** |",
        f"| stored but never acknowledged | {unacked} |",
        f"| participants finished (completion code) | {finished} of {args.participants} |",
        f"| first acknowledged answer after PostgreSQL was back | {recovery:.2f} s |",
        f"| longest pause between two acknowledged answers (whole run) | {gap:.2f} s |",
        f"| worker replaced by gunicorn | {'yes' if faults['killed'] not in workers_after else 'no'} |",
        f"| client retries (endpoint:reason → count) | {', '.join(f'{k} {v}' for k, v in retries.items()) or 'none'} |",
        f"| server-side retries on a dropped connection | {log.count('retrying')} |",
        f"| wall time | {wall:.1f} s |",
        "",
        f"Load average before/after: {load_before} / {B.loadavg()}.",
    ])
    print(body)
    ok = lost == 0 and dup == 0 and finished == args.participants
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("bench_faults", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
