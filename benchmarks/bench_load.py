"""Benchmark: the study app under load, on loopback, against `advlegit serve --production` (gunicorn
gthread) and PostgreSQL. Not a test: numbers go to BENCHMARKS.md (section bench_load).

An asyncio client (aiohttp) drives the real participant flow over HTTP, exactly as a browser does:
recruitment link -> consent page (CSRF token) -> consent -> instructions (allocation) -> trial list ->
one POST per answer (client UUID, X-CSRF-Token) -> state -> debrief -> completion page. Every request is
retried like task.js retries (lost connection, 5xx, 429: same body, same UUID). Images are not fetched:
they are immutable and cacheable for a year, so in production a proxy or CDN serves them.

Phases, all against the same server in one run:
  1. capacity of a trivial endpoint: closed loop on /healthz (no database) and /readyz (one SELECT 1);
  2. capacity of the answer endpoint: participants answering back to back (no think time);
     the ratio answer/trivial is the headline number;
  3. 50, 200 and 500 concurrent participants answering like people (think time ~U(0.5, 1.5) s between
     answers): sustained answers/s and answer latency p50/p95/p99; allocation (the start button) and
     page latencies are reported on their own.

    .venv/bin/python benchmarks/bench_load.py [--levels 50,200,500] [--workers 4] [--threads 4]
        [--tune 2x8,3x8,4x4] [--no-write]

PostgreSQL: a fresh database on $ADVLEGIT_TEST_DATABASE_URL's server (scripts/start-postgres.sh), dropped
afterwards.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "study_app"))

import aiohttp  # noqa: E402

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_TOKEN = re.compile(r"/p/([^/]+)/")
RETRY = {429, 500, 502, 503, 504}


# ------------------------------------------------------------------ measurements

@dataclass
class Stats:
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))  # seconds, final tries
    retries: Counter = field(default_factory=Counter)   # "endpoint:reason"
    acked: dict[str, tuple[str, int]] = field(default_factory=dict)  # answer uuid -> (participant token, index)
    ack_times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def pct(self, name: str, q: float) -> float:
        xs = sorted(self.latency[name])
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] * 1000


async def call(s: aiohttp.ClientSession, stats: Stats, name: str, method: str, url: str, *, retries: int = 60,
               expect: tuple[int, ...] = (200, 201, 303), **kw) -> tuple[int, str, dict]:
    """One logical request, retried like task.js (same body) until the server answers it."""
    delay = 0.2
    for attempt in range(retries + 1):
        t0 = time.perf_counter()
        try:
            async with s.request(method, url, allow_redirects=False, **kw) as r:
                text = await r.text()
                status, headers = r.status, dict(r.headers)
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            stats.retries[f"{name}:{type(exc).__name__}"] += 1
        else:
            if status in expect:
                stats.latency[name].append(time.perf_counter() - t0)
                return status, text, headers
            if status not in RETRY:
                raise RuntimeError(f"{method} {url}: HTTP {status}: {text[:200]}")
            stats.retries[f"{name}:{status}"] += 1
            if status == 429:
                delay = max(delay, float(headers.get("Retry-After", 1)))
        if attempt < retries:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
    raise RuntimeError(f"{method} {url}: gave up after {retries} retries")


@dataclass
class Participant:
    base: str
    study: str
    n: int
    token: str = ""
    csrf: str = ""
    trials: list = field(default_factory=list)

    async def start(self, s: aiohttp.ClientSession, stats: Stats) -> None:
        pid = f"load{self.n}x{secrets.token_hex(6)}"
        _, _, h = await call(s, stats, "entry", "GET", f"{self.base}/s/{self.study}",
                             params={"PROLIFIC_PID": pid, "STUDY_ID": "bench", "SESSION_ID": f"s{pid}"})
        self.token = _TOKEN.search(h["Location"]).group(1)
        p = f"{self.base}/p/{self.token}"
        _, page, _ = await call(s, stats, "page", "GET", f"{p}/consent")
        self.csrf = _CSRF.search(page).group(1)
        await call(s, stats, "consent", "POST", f"{p}/consent", data={"choice": "agree", "csrf": self.csrf})
        await call(s, stats, "start", "POST", f"{p}/instructions", data={"csrf": self.csrf})
        await call(s, stats, "page", "GET", f"{p}/task")
        _, text, _ = await call(s, stats, "trials", "GET", f"{self.base}/api/p/{self.token}/trials")
        import json

        d = json.loads(text)
        self.trials = d["trials"][d["next_index"]:]

    async def answer_all(self, s: aiohttp.ClientSession, stats: Stats, think: tuple[float, float] | None) -> None:
        rng = random.Random(self.n)
        for t in self.trials:
            if think:
                await asyncio.sleep(rng.uniform(*think))
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            body = {"uuid": str(uuid.uuid4()), "trial_index": t["index"], "response": str(rng.randrange(10)),
                    "rt_ms": round(rng.uniform(400, 2000), 1), "shown_at": now, "answered_at": now,
                    "screen_width": 1440, "screen_height": 900, "viewport_width": 1440, "viewport_height": 800,
                    "device_pixel_ratio": 1}
            await call(s, stats, "answer", "POST", f"{self.base}/api/p/{self.token}/responses", json=body,
                       headers={"X-CSRF-Token": self.csrf}, expect=(200, 201))
            stats.acked[body["uuid"]] = (self.token, t["index"])
            stats.ack_times.append(time.perf_counter())

    async def finish(self, s: aiohttp.ClientSession, stats: Stats) -> None:
        import json

        _, text, _ = await call(s, stats, "state", "GET", f"{self.base}/api/p/{self.token}/state")
        if json.loads(text)["state"] != "data_complete":
            raise RuntimeError(f"participant {self.n} not complete: {text}")
        p = f"{self.base}/p/{self.token}"
        await call(s, stats, "debrief", "POST", f"{p}/debrief", data={"csrf": self.csrf})
        _, page, _ = await call(s, stats, "page", "GET", f"{p}/done")
        if "completion" not in page:
            raise RuntimeError(f"participant {self.n}: no completion page")


def session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def run_participants(base: str, study: str, n: int, think, stats: Stats, offset: int = 0,
                           start_concurrency: int = 32, cpu_seconds=lambda: 0.0) -> dict:
    """n participants: all start (allocation), then all answer at once, then all finish. `cpu_seconds`
    (the server's CPU time so far) is read around the answering only."""
    people = [Participant(base, study, offset + i) for i in range(n)]
    async with session(n + 8) as s:
        gate = asyncio.Semaphore(start_concurrency)

        async def start(p):
            async with gate:
                await p.start(s, stats)

        t0 = time.perf_counter()
        await asyncio.gather(*(start(p) for p in people))
        t_started = time.perf_counter() - t0
        before = len(stats.latency["answer"])
        cpu0, t1 = cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(p.answer_all(s, stats, think) for p in people))
        t_answer = time.perf_counter() - t1
        answer_cpu = cpu_seconds() - cpu0
        n_answers = len(stats.latency["answer"]) - before
        await asyncio.gather(*(p.finish(s, stats) for p in people))
    return {"n": n, "start_s": t_started, "answer_s": t_answer, "answers": n_answers,
            "answers_per_s": n_answers / t_answer, "cpu_ms_per_answer": answer_cpu * 1000 / n_answers,
            "tokens": [p.token for p in people]}


async def hammer(url: str, seconds: float, conns: int) -> float:
    """Closed loop: `conns` clients requesting `url` back to back; returns successful requests/s."""
    done = 0
    stop = time.perf_counter() + seconds
    async with session(conns) as s:
        async def loop():
            nonlocal done
            while time.perf_counter() < stop:
                async with s.get(url) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(conns)))
        return done / (time.perf_counter() - t0)


# ------------------------------------------------------------------ the server

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`advlegit serve --production` in a subprocess (gunicorn master + workers), plain http on loopback."""

    def __init__(self, db_url: str, instance: Path, workers: int, threads: int, log: Path,
                 secret: str | None = None, root: Path = ROOT, preamble: str = "", env: dict | None = None,
                 boot_s: float = 60):
        """root: the checkout whose app is served (bench_start compares two); preamble: Python run in the
        master before the app (a benchmark's hooks, from benchmarks/); env: extra environment; boot_s: how long
        the workers may take to come up (a loaded machine imports slowly)."""
        # Several hosts of one deployment share the secret (participant CSRF tokens are derived from it).
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(instance),
               "ADVLEGIT_SECRET_KEY": secret or secrets.token_hex(32), "ADVLEGIT_INSECURE_COOKIES": "1",
               "ADVLEGIT_PROXY_HOPS": "0", "PYTHONPATH": f"{root}{os.pathsep}{ROOT / 'benchmarks'}", **(env or {})}
        self.log = log.open("ab")
        # A checkout from before the advlegit.* import names (bench_start --old) has bare top-level packages.
        cli_module = "advlegit.study_app.cli" if (root / "advlegit" / "__init__.py").exists() else "study_app.cli"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"{preamble}\nfrom {cli_module} import cli; cli()", "serve", "--production",
             "--port", str(self.port), "--workers", str(workers), "--threads", str(threads), "--no-access-log"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)
        import requests

        deadline = time.time() + boot_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {log}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200 and len(self.workers()) == workers:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def workers(self) -> list[int]:
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(stat.parent.name))
            except (OSError, IndexError, ValueError):
                continue
        return sorted(pids)

    def worker_cpu_seconds(self) -> float:
        """User + system CPU time the workers have used so far: on a machine shared with other work this
        cost per answer moves much less than answers per second do."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.workers():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / ticks

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@contextmanager
def study_database(tmp: Path, admin_url: str | None = None, db_url: str | None = None):
    """A fresh PostgreSQL database with the schema (advlegit db upgrade) and one identify study."""
    from click.testing import CliRunner
    from study_fixtures import fresh_postgres_database, write_design, write_stimulus_set

    from advlegit.study_app.cli import cli

    def setup(url):
        env = {"DATABASE_URL": url, "ADVLEGIT_INSTANCE": str(tmp / "inst")}
        res = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
        assert res.exit_code == 0, res.output
        stimuli = write_stimulus_set(tmp / "stimuli")
        design = write_design(tmp / "design.toml", "identify", trials=20, target=1_000_000)
        res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(stimuli), "--design", str(design)], env=env)
        assert res.exit_code == 0, res.output
        return res.output.strip().splitlines()[-1]

    if db_url:
        yield db_url, setup(db_url)
        return
    with fresh_postgres_database(admin_url) as url:
        yield url, setup(url)


def count_rows(db_url: str) -> tuple[int, int, dict[str, int]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            n = c.execute(text("SELECT count(*) FROM responses")).scalar()
            distinct = c.execute(text("SELECT count(DISTINCT uuid) FROM responses")).scalar()
            uuids = {u: 1 for (u,) in c.execute(text("SELECT uuid FROM responses"))}
    finally:
        engine.dispose()
    return n, distinct, uuids


def loadavg() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------ main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="50,200,500")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each trivial-endpoint phase")
    ap.add_argument("--capacity-participants", type=int, default=48,
                    help="participants answering back to back in the answer-capacity phase")
    ap.add_argument("--tune", default="", help="e.g. 2x8,3x8,4x4: measure capacity under each gunicorn "
                    "workers x threads first, then run the levels under the best (by answer capacity)")
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    admin_url = os.environ.get("ADVLEGIT_TEST_DATABASE_URL")
    if not admin_url:
        sys.exit("set ADVLEGIT_TEST_DATABASE_URL (bash scripts/start-postgres.sh | tail -1)")
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    import tempfile

    load_before = loadavg()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with study_database(tmp, admin_url) as (db_url, study):
            tuning, tuned_acks = [], {}
            for k, cfg in enumerate(c for c in args.tune.split(",") if c.strip()):
                w, t = (int(x) for x in cfg.lower().split("x"))
                server = Server(db_url, tmp / "inst", w, t, tmp / "server.log")
                try:
                    h = asyncio.run(hammer(server.url + "/healthz", args.seconds / 2, 64))
                    rz = asyncio.run(hammer(server.url + "/readyz", args.seconds / 2, 64))
                    tune_stats = Stats()
                    c = asyncio.run(run_participants(server.url, study, args.capacity_participants, None, tune_stats,
                                                     offset=200_000 + 1000 * k))
                    tuned_acks.update(tune_stats.acked)
                finally:
                    server.stop()
                tuning.append((w, t, h, rz, c["answers_per_s"], loadavg()))
                print(f"tune {w}x{t}: /healthz {h:.0f}/s, /readyz {rz:.0f}/s, answers {c['answers_per_s']:.0f}/s")
            if tuning:
                best = max(tuning, key=lambda x: x[4])
                args.workers, args.threads = best[0], best[1]
            args.tuning = tuning
            server = Server(db_url, tmp / "inst", args.workers, args.threads, tmp / "server.log")
            try:
                stats = Stats()
                stats.acked.update(tuned_acks)
                print(f"server: {args.workers} workers x {args.threads} threads; load average {load_before}")
                healthz = asyncio.run(hammer(server.url + "/healthz", args.seconds, 64))
                readyz = asyncio.run(hammer(server.url + "/readyz", args.seconds, 64))
                print(f"trivial: /healthz {healthz:.0f}/s, /readyz {readyz:.0f}/s")
                cap = asyncio.run(run_participants(server.url, study, args.capacity_participants, None, stats,
                                                   offset=100_000, cpu_seconds=server.worker_cpu_seconds))
                cap.update(p50=stats.pct("answer", .5), p99=stats.pct("answer", .99))
                print(f"answer capacity: {cap['answers_per_s']:.0f} answers/s ({cap['answers']} answers, "
                      f"{args.capacity_participants} participants back to back; app workers' CPU "
                      f"{cap['cpu_ms_per_answer']:.2f} ms per answer)")
                results = []
                for n in levels:
                    st = Stats()
                    res = asyncio.run(run_participants(server.url, study, n, (0.5, 1.5), st, offset=n * 1000))
                    res.update(p50=st.pct("answer", .5), p95=st.pct("answer", .95), p99=st.pct("answer", .99),
                               start_p50=st.pct("start", .5), start_p95=st.pct("start", .95),
                               entry_p95=st.pct("entry", .95), page_p95=st.pct("page", .95),
                               debrief_p95=st.pct("debrief", .95), retries=sum(st.retries.values()),
                               retry_kinds=dict(st.retries), load=loadavg())
                    results.append(res)
                    print(f"{n:4d} participants: {res['answers_per_s']:.0f} answers/s, answer p50/p95/p99 "
                          f"{res['p50']:.1f}/{res['p95']:.1f}/{res['p99']:.1f} ms, start p50/p95 "
                          f"{res['start_p50']:.0f}/{res['start_p95']:.0f} ms, retries {res['retries']}, "
                          f"load {res['load']}")
                    stats.acked.update(st.acked)
                    for k, v in st.latency.items():
                        stats.latency[k] += v
            finally:
                server.stop()
            n_rows, n_distinct, stored = count_rows(db_url)
    lost = sum(1 for u in stats.acked if u not in stored)
    load_after = loadavg()
    write(args, healthz, readyz, cap, results, n_rows, n_distinct, len(stats.acked), lost, load_before, load_after)


NOTE = ("Where the time goes: `/healthz` is Flask's fixed cost per request and nothing else. An answer adds "
        "JSON validation, two statements on PostgreSQL (rate counters and participant lookup in one "
        "autocommit statement; the guarded pointer move plus insert in another) and a durable commit "
        "(`synchronous_commit = on`: every acknowledged answer is on disk before its reply; one fsync here "
        "takes about 3.6 ms, shared by concurrent commits). Before tuning, the path made about a dozen "
        "round trips (a pre-ping per checkout, a separate counter transaction, ORM loads and flushes) and an "
        "early run of this benchmark (fewer participants, similar load) measured 145 answers/s, 5% of "
        "`/healthz`. The remaining gap to a database-free endpoint is the database work itself; against "
        "`/readyz`, which makes one database round trip, the answer endpoint is closer but still under 50%.")


def write(args, healthz, readyz, cap, results, n_rows, n_distinct, n_acked, lost, load_before, load_after):
    ratio = cap["answers_per_s"] / healthz
    ratio_db = cap["answers_per_s"] / readyz
    at200 = next((r for r in results if r["n"] == 200), None)
    lines = [
        "Participant flow over real HTTP (aiohttp client, same 2-core machine, loopback) against "
        f"`advlegit serve --production` (gunicorn gthread, {args.workers} workers × {args.threads} threads, "
        "access log off) and PostgreSQL 15; rate limits, CSRF checks and the DB-backed counters on, "
        "as in production. `benchmarks/bench_load.py`.",
        "",
        f"Load average (1/5/15 min) before: {load_before}, after: {load_after} — the machine is shared with "
        "other work, so these numbers are lower bounds.",
        "",
        "**Capacity (closed loop, no think time)**",
        "",
        "| endpoint | requests/s |",
        "|---|---|",
        f"| `/healthz` (trivial, no database) | {healthz:.0f} |",
        f"| `/readyz` (trivial, one `SELECT 1`) | {readyz:.0f} |",
        f"| answer POST ({args.capacity_participants} participants back to back; {cap['answers']} answers, "
        f"p50 {cap['p50']:.0f} ms, p99 {cap['p99']:.0f} ms) | {cap['answers_per_s']:.0f} |",
        "",
        f"Answer endpoint / trivial endpoint: **{ratio:.0%}** of `/healthz` (target ≥ 50%: "
        f"{'met' if ratio >= 0.5 else 'not met'}), {ratio_db:.0%} of `/readyz`.",
        "",
        NOTE,
        "",
        *(["Gunicorn configurations tried first (workers × threads: /healthz, /readyz, answers per second): "
           + "; ".join(f"{w}×{t}: {h:.0f}, {rz:.0f}, {a:.0f}" for w, t, h, rz, a, _ in args.tuning)
           + f" — the rest uses {args.workers}×{args.threads}.", ""] if getattr(args, "tuning", None) else []),
        "**Concurrent participants answering like people** (think time U(0.5, 1.5) s between answers; "
        "all allocated first, then all answer their 24 trials (2 practice, 20 main, 2 attention checks) at once)",
        "",
        "| participants | answers/s (sustained) | answer p50 / p95 / p99 (ms) | start (allocation) p50 / p95 (ms) "
        "| page p95 (ms) | client retries | load avg after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['n']} | {r['answers_per_s']:.0f} | {r['p50']:.1f} / {r['p95']:.1f} / {r['p99']:.1f} | "
                     f"{r['start_p50']:.0f} / {r['start_p95']:.0f} | {r['page_p95']:.0f} | {r['retries']} | "
                     f"{r['load']} |")
    if at200:
        lines += ["", f"p99 answer latency at 200 participants: **{at200['p99']:.1f} ms** (target < 200 ms: "
                      f"{'met' if at200['p99'] < 200 else 'not met'})."]
    lines += ["", f"Data check after the run: {n_acked} answers acknowledged, {n_rows} rows stored "
                  f"({n_distinct} distinct UUIDs), {lost} acknowledged answers missing."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("bench_load", body)


if __name__ == "__main__":
    main()
