"""The whole study in one command: generate -> studies -> bots -> export -> analyse -> serve.

Every stage runs as the same `advlegit ...` command a researcher would type (shown before it runs),
in a child process, so the demo exercises the public interfaces and its output teaches them.
What is done is remembered in DIR/demo-state.json: a second run reuses the stimulus set, the
studies and the bots' answers, and only re-exports and re-analyses (picking up anything a person
answered meanwhile).
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from advlegit.generation.manifest import manifest_sha256
from advlegit.resources import resource_dir

from .designs import TASKS, DemoDesignError, derive, kinds_served, load_example, trial_options, write_toml

EXAMPLES = resource_dir("examples")
DEFAULT_CONFIG = EXAMPLES / "mnist-demo.toml"
QUICK_CONFIG = EXAMPLES / "demo-quick.toml"  # `advlegit demo --quick`, and the test suite's demo run
STAGES = 6


class DemoError(RuntimeError):
    """A stage failed; the message names the command and its last lines of output."""


@dataclass
class DemoOptions:
    config: Path = DEFAULT_CONFIG
    out: Path = Path("runs/mnist-demo")
    bots: int = 30
    host: str = "127.0.0.1"
    port: int = 5000
    device: str = "cpu"
    bot_concurrency: int = 4


@dataclass
class DemoResult:
    url: str
    stimuli: Path
    studies: dict[str, str]
    reports: dict[str, Path]
    admin_password: str
    seconds: float
    server: subprocess.Popen | None = None


class Paths:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.stimuli = self.root / "stimuli"
        self.instance = self.root / "instance"
        self.designs = self.root / "designs"
        self.exports = self.root / "exports"
        self.reports = self.root / "reports"
        self.state = self.root / "demo-state.json"
        self.admin_password = self.root / "admin-password.txt"
        self.server_log = self.root / "server.log"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.instance / 'advlegit.db'}"


class Demo:
    def __init__(self, options: DemoOptions, echo: Callable[[str], None] = print) -> None:
        self.o = options
        self.p = Paths(options.out)
        self.echo = echo
        self.env = dict(os.environ, DATABASE_URL=self.p.database_url, ADVLEGIT_INSTANCE=str(self.p.instance),
                        PYTHONUNBUFFERED="1")
        self.state: dict[str, Any] = {}
        self.stage = 0

    # -- running commands ---------------------------------------------------------------------
    def advlegit(self, *args: str, env: dict[str, str] | None = None, quiet: bool = False) -> str:
        """Run `advlegit ARGS` in a child process; stream its output unless quiet; return stdout."""
        self.echo(f"  $ advlegit {' '.join(args)}")
        cmd = [sys.executable, "-c", "import advlegit; advlegit.main()", *args]
        proc = subprocess.run(cmd, env=env or self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if quiet else None, text=True)
        if not quiet and proc.stdout.strip():
            self.echo("    " + proc.stdout.strip().replace("\n", "\n    "))
        if proc.returncode != 0:
            tail = ((proc.stderr or "") + proc.stdout).strip().splitlines()[-5:]
            raise DemoError(f"`advlegit {' '.join(args)}` failed (exit {proc.returncode})"
                            + (":\n    " + "\n    ".join(tail) if tail else ""))
        return proc.stdout

    def step(self, title: str) -> float:
        self.stage += 1
        self.echo(f"\n[{self.stage}/{STAGES}] {title}")
        return time.monotonic()

    def done(self, started: float) -> None:
        self.echo(f"  ... {time.monotonic() - started:.0f} s")

    # -- state ---------------------------------------------------------------------------------
    def load_state(self) -> None:
        self.state = json.loads(self.p.state.read_text()) if self.p.state.is_file() else {}

    def save_state(self) -> None:
        tmp = self.p.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.p.state)

    # -- the stages ----------------------------------------------------------------------------
    def run(self) -> DemoResult:
        begun = time.monotonic()
        self.p.root.mkdir(parents=True, exist_ok=True)
        self.load_state()

        t = self.step("train the defended models and write the stimulus set (cached after the first run)")
        self.advlegit("generate", str(self.o.config), "-o", str(self.p.stimuli), "--device", self.o.device, "--force")
        manifest = json.loads((self.p.stimuli / "manifest.json").read_text())
        digest = manifest_sha256(self.p.stimuli)
        self.done(t)

        t = self.step("database and one study per task type")
        if self.state.get("manifest_sha256") not in (None, digest):
            self.echo("  the stimulus set changed since the last demo run: starting a fresh demo database")
            self.retire_server()  # it holds the old database open
            for folder in (self.p.instance, self.p.designs, self.p.exports, self.p.reports):
                shutil.rmtree(folder, ignore_errors=True)
            self.state = {}
        self.state["manifest_sha256"] = digest
        self.advlegit("db", "upgrade", quiet=True)
        studies = self.state.setdefault("studies", {})
        for task in TASKS:
            if task not in studies:
                studies[task] = {"id": self.create_study(task, manifest), "bots": 0}
                self.save_state()
            else:
                self.echo(f"  {task}: study {studies[task]['id']} (from the last run)")
        password = self.admin_login()
        self.save_state()
        self.done(t)

        t = self.step("start the study server")
        url, server = self.start_server()
        self.done(t)
        try:
            t = self.step(f"simulated participants: {self.o.bots} per study, answering like an independent "
                          "rater classifier")
            for task in TASKS:
                self.run_bots(task, url)
            self.done(t)

            t = self.step("export every study (tidy CSV, one row per response)")
            self.p.exports.mkdir(parents=True, exist_ok=True)
            for task in TASKS:
                self.advlegit("export", "--study", studies[task]["id"], "-o", str(self.p.exports / f"{task}.csv"),
                              quiet=True)
            self.done(t)

            t = self.step("analyse every study")
            reports = {}
            for task in TASKS:
                out = self.p.reports / task
                self.advlegit("analyze", str(self.p.exports / f"{task}.csv"), "-o", str(out), quiet=True)
                reports[task] = out / "report.html"
            self.done(t)
        except BaseException:
            if server is not None:
                self.release(server)
            raise

        result = DemoResult(url=url, stimuli=self.p.stimuli, studies={k: v["id"] for k, v in studies.items()},
                            reports=reports, admin_password=password, seconds=time.monotonic() - begun,
                            server=server)
        self.summary(result)
        return result

    def create_study(self, task: str, manifest: dict[str, Any]) -> str:
        defended = [m["name"] for m in manifest["models"] if m["role"] == "defended"]
        path = self.p.designs / f"{task}.toml"
        last = ""
        try:
            base = load_example(task)
            options = trial_options(task, base, len(defended), len(manifest["sources"]),
                                    kinds_served(base, manifest))
        except DemoDesignError as exc:
            raise DemoError(str(exc)) from None
        for trials in options:  # largest first; the study app refuses what the set cannot serve
            write_toml(derive(task, defended, trials), path,
                       f"Written by `advlegit demo` from examples/design-{task}.toml: every defense of the\n"
                       f"stimulus set, {trials} main trials. Edit a copy to design your own study.")
            try:
                return self.advlegit("study", "create", "--stimuli", str(self.p.stimuli), "--design", str(path),
                                     quiet=True).strip().splitlines()[-1]
            except DemoError as exc:
                last = str(exc)
        raise DemoError(f"no {task} study fits this stimulus set: {last}")

    def admin_login(self) -> str:
        if self.p.admin_password.is_file() and self.state.get("admin"):
            return self.p.admin_password.read_text().strip()
        password = secrets.token_urlsafe(12)
        self.p.admin_password.write_text(password + "\n")
        self.p.admin_password.chmod(0o600)
        self.advlegit("create-admin", "--username", "admin", env=dict(self.env, ADVLEGIT_ADMIN_PASSWORD=password),
                      quiet=True)
        self.state["admin"] = True
        return password

    def start_server(self) -> tuple[str, subprocess.Popen | None]:
        """Reuse a demo server that is still running on this folder (a second `advlegit demo` while the
        first one serves); otherwise start one on the requested port, or a free one if it is taken."""
        running = self.state.get("server")
        if running and _pid_alive(running["pid"]) and _answers(running["url"]):
            self.echo(f"  reusing the demo server already running at {running['url']} (pid {running['pid']})")
            return running["url"], None
        port = self.o.port if _port_free(self.o.host, self.o.port) else _free_port(self.o.host)
        if port != self.o.port:
            self.echo(f"  port {self.o.port} is busy; using {port}")
        url = f"http://{self.o.host}:{port}"
        self.echo(f"  $ advlegit serve --host {self.o.host} --port {port}   (log: {self.p.server_log})")
        with self.p.server_log.open("ab") as log:  # the child keeps its own copy of the descriptor
            server = subprocess.Popen([sys.executable, "-c", "import advlegit; advlegit.main()", "serve",
                                       "--host", self.o.host, "--port", str(port)],
                                      env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                stop_server(server)
                raise DemoError(f"the server did not start; see {self.p.server_log}")
            time.sleep(0.3)
        self.state["server"] = {"pid": server.pid, "url": url}
        self.save_state()
        return url, server

    def retire_server(self) -> None:
        """Stop the demo server a previous run left serving (another terminal's `advlegit demo`)."""
        running = self.state.pop("server", None)
        if running and _pid_alive(running["pid"]):
            os.kill(running["pid"], signal.SIGTERM)
            self.echo(f"  stopped the previous run's server at {running['url']}: its database is replaced")

    def release(self, server: subprocess.Popen) -> None:
        """Stop a server this run started and forget it, so the next run starts its own."""
        stop_server(server)
        self.load_state()
        if self.state.get("server", {}).get("pid") == server.pid:
            del self.state["server"]
            self.save_state()

    def run_bots(self, task: str, url: str) -> None:
        study = self.state["studies"][task]
        need = self.o.bots - study["bots"]
        if need <= 0:
            self.echo(f"  {task}: {study['bots']} bots already answered (from the last run)")
            return
        # Bots derive their response ids from the seed: a distinct seed per study and per run.
        seed = TASKS.index(task) * 100_000 + study["bots"]
        self.advlegit("bots", "--url", url, "--study", study["id"], "-n", str(need), "--stimuli", str(self.p.stimuli),
                      "--model", "rater", "--concurrency", str(self.o.bot_concurrency), "--seed", str(seed))
        study["bots"] += need
        self.save_state()

    def summary(self, r: DemoResult) -> None:
        e = self.echo
        e(f"\nDemo finished in {_duration(r.seconds)}.")
        e(f"  stimulus set  {r.stimuli}   (figures in {r.stimuli / 'figures'})")
        for task, report in r.reports.items():
            e(f"  {task:<9}     {report}")
        e("")
        e("Take part yourself (one link per task; answers are stored like any participant's):")
        for task, sid in r.studies.items():
            e(f"  {task:<9}  {r.url}/s/{sid}")
        e(f"Watch the answers arrive: {r.url}/admin/  (user: admin, password: {r.admin_password}"
          f" - also in {self.p.admin_password})")
        e(f"Re-run the analysis with your answers included: run `{rerun_command(self.o)}` again "
          "(in another terminal while this one serves; it reuses everything and takes well under 2 minutes).")


def default_out(config: Path) -> Path:
    return Path("runs/demo-quick" if config == QUICK_CONFIG else "runs/mnist-demo")


def rerun_command(o: DemoOptions) -> str:
    """The command that runs this demo again, so that it reuses this run's folder and models."""
    parts = ["advlegit demo"]
    if o.config == QUICK_CONFIG:
        parts.append("--quick")
    elif o.config != DEFAULT_CONFIG:
        parts.append(f"--config {shlex.quote(str(o.config))}")
    if Path(o.out) != default_out(o.config):
        parts.append(f"-o {shlex.quote(str(o.out))}")
    return " ".join(parts)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m else f"{s} s"
