"""Benchmark: one Start after a backlog of abandoned arrivals (issue 14, item 12).

2,361 anonymous arrivals that went quiet past the study's timeout, then one participant presses Start:
how long that request takes (it times the backlog out), and a second Start right after (nothing left to
time out), on SQLite and PostgreSQL, for this checkout and, with --compare-with REV, for the study app of
an earlier commit (extracted with `git archive`, run in a subprocess). The server side is measured
in-process (Flask test client), so the numbers are the work of the request, not of HTTP.

    .venv/bin/python benchmarks/bench_stale_timeout.py [--stale 2361] [--compare-with REV] [--no-write]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "study_app"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(kind: str, stale: int, repeats: int) -> dict:
    """Seconds for the Start that times the backlog out, and for the next Start (median of repeats)."""
    import re
    from contextlib import nullcontext
    from datetime import timedelta

    from sqlalchemy import insert
    from study_fixtures import create_study, csrf_of, fresh_postgres_database, make_app, write_stimulus_set

    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant, Transition

    tmp = Path(tempfile.mkdtemp(prefix="bench-stale-"))
    stimuli = write_stimulus_set(tmp / "stimuli")
    pg = fresh_postgres_database(os.environ["ADVLEGIT_TEST_DATABASE_URL"]) if kind == "postgresql" else None
    first, second = [], []
    with pg or nullcontext(f"sqlite:///{tmp / 'bench.db'}") as url:
        for r in range(repeats):
            app = make_app(url, tmp / f"inst{r}", RATE_LIMITS_ENABLED=False)
            with app.app_context():
                db.drop_all()
                db.create_all()
            study = create_study(app, stimuli, tmp, "identify", trials=8, practice=2, checks=2)
            client = app.test_client()

            def start() -> float:
                token = re.search(r"/p/([^/]+)/", client.get(f"/s/{study}").headers["Location"]).group(1)  # noqa: B023
                client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf_of(token)})  # noqa: B023
                t0 = time.perf_counter()
                resp = client.post(f"/p/{token}/instructions", data={"csrf": csrf_of(token)})  # noqa: B023
                elapsed = time.perf_counter() - t0
                assert resp.status_code == 303 and resp.headers["Location"].endswith("/task"), resp.status_code
                return elapsed

            start()  # warm-up: templates, statement caches, the pool
            old = utcnow() - timedelta(hours=2)
            with app.app_context():  # the backlog: anonymous arrivals, quiet for two hours
                rows = [{"id": f"pstale{n:08d}", "study_id": study, "access_token": f"stale-{r}-{n}",
                         "platform": "anonymous", "platform_json": "{}", "state": "entered",
                         "created_at": old, "last_seen_at": old} for n in range(stale)]
                db.session.execute(insert(Participant), rows)
                db.session.execute(insert(Transition), [{"participant_id": x["id"], "from_state": None,
                                                         "to_state": "entered", "reason": "anonymous", "at": old}
                                                        for x in rows])
                db.session.commit()
            first.append(start())
            second.append(start())
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {"first": median(first), "second": median(second)}


def run_measurement(pythonpath: str, kind: str, stale: int, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run([sys.executable, __file__, "--measure", kind, "--stale", str(stale),
                          "--repeats", str(repeats)], env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stale", type=int, default=2361)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare-with", default="", help="a git revision whose study_app to measure as 'before'")
    ap.add_argument("--measure", choices=["sqlite", "postgresql"], help=argparse.SUPPRESS)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.stale, args.repeats)))
        return
    if not os.environ.get("ADVLEGIT_TEST_DATABASE_URL"):
        sys.exit("set ADVLEGIT_TEST_DATABASE_URL (bash scripts/start-postgres.sh | tail -1)")
    codes = [("this checkout", str(ROOT))]
    with tempfile.TemporaryDirectory() as old:
        if args.compare_with:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.compare_with, "study_app"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
            codes.insert(0, (f"before (`{args.compare_with}`)", f"{old}:{ROOT}"))
        rows = []
        for label, path in codes:
            for kind in ("sqlite", "postgresql"):
                m = run_measurement(path, kind, args.stale, args.repeats)
                rows.append(f"| {label} | {kind} | {m['first'] * 1000:.0f} ms | {m['second'] * 1000:.0f} ms |")
                print(rows[-1], flush=True)
    body = "\n".join([
        "## One Start after a backlog of abandoned sessions (`benchmarks/bench_stale_timeout.py`)", "",
        f"After a warm-up Start, {args.stale:,} anonymous arrivals quiet past the timeout, then one Start (it "
        f"times them all out), then another Start; server time of the request, in process, median of "
        f"{args.repeats} fresh databases.", "",
        "| code | database | Start that times the backlog out | next Start |", "|---|---|---|---|", *rows, "",
        f"Load average during the run: {'/'.join(f'{x:.2f}' for x in os.getloadavg())} (a shared machine).",
    ])
    if args.no_write:
        print(body)
        return
    from _report import write_section

    write_section("bench_stale_timeout", body)


if __name__ == "__main__":
    main()
