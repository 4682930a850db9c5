"""Benchmark: two app hosts behind one nginx, one PostgreSQL, and one host dies mid-load.

Two `advlegit serve --production` servers (each its own gunicorn master and workers, as on two machines)
share one PostgreSQL; Debian's nginx balances them (least_conn; a host is taken out for 5 s after 3 failed
connections) and, when a host stops answering, sends the
request to the other (`proxy_next_upstream error timeout http_502 http_503 non_idempotent`). Retrying a
POST on the other host is safe here because every state-changing request is idempotent: an answer carries
its client UUID (stored once), and consent, Start and debrief are guarded by the participant's state under a
row lock. Participants go through the whole flow (bench_load's client, retrying like task.js with the same
UUIDs); after a quarter of the answers, host A's master and every worker are killed with SIGKILL. Afterwards
the acknowledged answers are compared with the table: lost, duplicated, stored-but-unacknowledged; every
participant must have finished. Numbers go to BENCHMARKS.md (section bench_two_hosts).

    .venv/bin/python benchmarks/bench_two_hosts.py [--participants 150] [--no-write]

Needs nginx (`apt-get install nginx`; only the binary is used, with a private config in a temp folder) and
the PostgreSQL server of $ADVLEGIT_TEST_DATABASE_URL (scripts/start-postgres.sh).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_load as B  # noqa: E402

NGINX_CONF = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  upstream advlegit {{
    least_conn;
    server 127.0.0.1:{a} max_fails=3 fail_timeout=5s;
    server 127.0.0.1:{b} max_fails=3 fail_timeout=5s;
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://advlegit;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 2;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
    }}
  }}
}}
"""


class Nginx:
    def __init__(self, tmp: Path, a: int, b: int):
        self.port = B.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, a=a, b=b, port=self.port))
        self.proc = subprocess.Popen([shutil.which("nginx"), "-p", str(tmp), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=(tmp / "nginx.out").open("wb"))
        import requests

        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"nginx did not start; see {tmp}/nginx-error.log")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def kill_host(server: B.Server) -> list[int]:
    """The whole host goes: master and every worker, SIGKILL, no goodbye."""
    pids = [server.proc.pid] + server.workers()
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.proc.wait()
    return pids


async def scenario(base: str, study: str, n: int, stats: B.Stats, expected: int, faults: dict, victim: B.Server):
    people = [B.Participant(base, study, 70_000 + i) for i in range(n)]
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
        faults["kill_at_acks"] = len(stats.acked)
        faults["killed"] = await asyncio.to_thread(kill_host, victim)
        faults["kill_t"] = time.perf_counter()

    t0 = time.perf_counter()
    mon = asyncio.create_task(monitor())
    await asyncio.gather(*(person(p, random.uniform(0, 4)) for p in people))
    await mon
    return time.perf_counter() - t0, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--participants", type=int, default=150)
    ap.add_argument("--workers", type=int, default=2, help="gunicorn workers per host")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get install nginx")
    admin = os.environ.get("ADVLEGIT_TEST_DATABASE_URL") or sys.exit("set ADVLEGIT_TEST_DATABASE_URL")
    random.seed(0)
    load_before = B.loadavg()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with B.study_database(tmp, admin) as (db_url, study):
            secret = secrets.token_hex(32)  # one deployment: every host has the same environment
            host_a = B.Server(db_url, tmp / "inst-a", args.workers, args.threads, tmp / "a.log", secret)
            host_b = B.Server(db_url, tmp / "inst-b", args.workers, args.threads, tmp / "b.log", secret)
            proxy = Nginx(tmp, host_a.port, host_b.port)
            stats, faults = B.Stats(), {}
            try:
                wall, done = asyncio.run(scenario(proxy.url, study, args.participants, stats,
                                                  args.participants * 12, faults, host_a))
            finally:
                proxy.stop()
                host_b.stop()
                if host_a.proc.poll() is None:
                    host_a.stop()
            nginx_errors = (tmp / "nginx-error.log").read_text(errors="replace")
            n_rows, n_distinct, stored = B.count_rows(db_url)
            from sqlalchemy import create_engine, text

            engine = create_engine(db_url)
            with engine.connect() as c:
                finished = c.execute(text("SELECT count(*) FROM participants WHERE state = 'code_issued'")).scalar()
            engine.dispose()

    acked = set(stats.acked)
    lost = len(acked - set(stored))
    unacked = len(set(stored) - acked)
    dup = n_rows - n_distinct
    times = sorted(stats.ack_times)
    after = [t for t in times if t > faults["kill_t"]]
    before_kill = [t for t in times if t <= faults["kill_t"]]
    pause = (min(after) - max(before_kill)) if after and before_kill else float("nan")
    retries = dict(sorted(stats.retries.items()))
    body = "\n".join([
        "**Two app hosts, one dies** (`benchmarks/bench_two_hosts.py`): two production servers "
        f"({args.workers} workers × {args.threads} threads each, separate gunicorn masters as on two machines) "
        "share one PostgreSQL behind Debian's nginx (least_conn, `proxy_next_upstream error timeout http_502 "
        f"http_503 non_idempotent`). {args.participants} participants arrive over 4 s and go through the whole "
        f"flow (think time U(0.2, 0.8) s); after {faults['kill_at_acks']} acknowledged answers host A's master and "
        f"all its workers ({len(faults['killed'])} processes) are killed with SIGKILL and never come back. Clients "
        "retry like task.js (same UUID).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| answers acknowledged | {len(acked)} |",
        f"| rows in `responses` | {n_rows} ({n_distinct} distinct UUIDs) |",
        f"| acknowledged but missing (lost) | **{lost}** |",
        f"| stored twice (duplicated) | **{dup}** |",
        f"| stored but never acknowledged | {unacked} |",
        f"| participants finished (completion code) | **{finished} of {args.participants}** |",
        f"| answers acknowledged after the kill (all through host B) | {len(after)} |",
        f"| gap in acknowledgements around the kill | {pause:.2f} s |",
        f"| client retries (endpoint:reason → count) | {', '.join(f'{k} {v}' for k, v in retries.items()) or 'none'} |",
        f"| nginx: connections to the dead host refused | {nginx_errors.count('Connection refused')} |",
        f"| nginx: no live upstream (both hosts marked down) | {nginx_errors.count('no live upstreams')} |",
        f"| wall time | {wall:.1f} s |",
        "",
        f"Load average before/after: {load_before} / {B.loadavg()} (2 cores, shared with other work while measured).",
    ])
    print(body)
    ok = lost == 0 and dup == 0 and finished == args.participants
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("bench_two_hosts", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
