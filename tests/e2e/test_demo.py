"""`advlegit demo` end to end on a reduced configuration, as a newcomer runs it: the reports name every
defense; then a person takes the demo's printed participant link to completion in real Chromium, and a
second `advlegit demo` (while the first still serves) finds their answers in the export and report."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

pytestmark = [pytest.mark.browser, pytest.mark.slow]
CONFIG = Path(__file__).resolve().parents[2] / "examples" / "demo-quick.toml"
DEFENSES = [d["name"] for d in tomllib.loads(CONFIG.read_text())["defenses"]]
TASKS = ("identify", "rate", "compare")


@dataclass
class DemoRun:
    out: Path
    lines: list[str]
    proc: subprocess.Popen
    env: dict[str, str]
    cmd: list[str]  # the installed copy's advlegit command
    cwd: Path

    def link(self, task: str) -> str:
        return next(m.group(1) for line in self.lines if (m := re.match(rf"\s+{task}\s+(http://\S+/s/\S+)", line)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, e2e_model_cache, installed_advlegit):
    """The demo as a user runs it: from a non-editable install (`pip install .`), in a folder of their own."""
    root = tmp_path_factory.mktemp("demo")
    for own in ("analysis", "demo"):  # a researcher's own modules beside the run shadow nothing
        (root / f"{own}.py").write_text("raise RuntimeError('shadowed')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ADVLEGIT_INSTANCE")}
    env.update(ADVLEGIT_CACHE_DIR=str(e2e_model_cache), PYTHONUNBUFFERED="1")
    out = root / "run"
    cmd = installed_advlegit.command
    # --quick: the installed copy finds examples/demo-quick.toml in its package data (CONFIG is that file here)
    proc = subprocess.Popen([*cmd, "demo", "--quick", "-o", str(out), "--bots", "12",
                             "--port", str(_free_port())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, cwd=root)
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving at"):
                serving.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 900
    while not serving.wait(1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the demo did not reach 'Serving at':\n" + "\n".join(lines[-40:]))
    run = DemoRun(out, lines, proc, env, cmd, root)
    yield run
    # Ctrl-C stops the demo and its server.
    url = re.search(r"Serving at (\S+)", "\n".join(lines)).group(1)
    server_pid = json.loads((out / "demo-state.json").read_text())["server"]["pid"]
    os.killpg(proc.pid, signal.SIGINT)
    try:
        assert proc.wait(timeout=30) == 0, "\n".join(lines[-20:])
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=2)
    finally:  # never leave a demo or its server running after the suite, whatever failed
        for pid in (proc.pid, server_pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_demo_reports_name_every_defense(demo_run):
    text = "\n".join(demo_run.lines)
    assert "Demo finished in" in text
    for task in TASKS:
        report = demo_run.out / "reports" / task / "report.html"
        assert report.is_file(), text
        html = report.read_text()
        for defense in DEFENSES:
            assert defense in html, f"{task} report does not name {defense}"
        assert list((demo_run.out / "reports" / task / "figures").glob("*.png")) or task == "rate"
    # The stimulus set the demo wrote verifies, and its figures are there for the researcher.
    assert subprocess.run([*demo_run.cmd, "verify-stimuli", str(demo_run.out / "stimuli")], env=demo_run.env,
                          cwd=demo_run.cwd,
                          capture_output=True).returncode == 0
    assert (demo_run.out / "stimuli" / "figures" / "matched_stimuli.png").is_file()
    # Every bot's answers are in the exports: 12 participants per study.
    for task in TASKS:
        with (demo_run.out / "exports" / f"{task}.csv").open() as f:
            assert len({r["participant_id"] for r in csv.DictReader(f)}) == 12


def test_a_person_takes_the_printed_link_and_finds_their_answers(demo_run, browser, shots):
    design = tomllib.loads((demo_run.out / "designs" / "identify.toml").read_text())["study"]
    total = design["practice"] + design["trials"] + design["attention_checks"]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(demo_run.link("identify"))
    page.get_by_role("button", name="I agree, continue").click()
    page.wait_for_url("**/instructions")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/task")
    for i in range(total):
        # A selector, not wait_for_function: the app's CSP (rightly) forbids the eval that needs.
        page.locator(f'#task[data-shown="{i}"]').wait_for(state="attached", timeout=15000)
        page.keyboard.press(str(i % 10))
        if i < design["practice"]:
            page.locator("#feedback").wait_for(state="visible")
            page.keyboard.press("Enter")
    page.wait_for_url("**/debrief", timeout=20000)
    page.get_by_role("button", name="Finish").click()
    page.wait_for_url("**/done")
    page.screenshot(path=shots / "demo-done-1280.png")
    assert errors == []
    context.close()

    # A second demo run, while the first still serves, reuses everything and re-analyses.
    again = subprocess.run([*demo_run.cmd, "demo", "--config", str(CONFIG), "-o", str(demo_run.out), "--bots", "12",
                            "--no-serve"], env=demo_run.env, cwd=demo_run.cwd, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "reusing the demo server" in again.stdout
    assert "nothing to do" in again.stdout + again.stderr  # the stimulus set was not regenerated
    with (demo_run.out / "exports" / "identify.csv").open() as f:
        rows = list(csv.DictReader(f))
    mine = [r for r in rows if r["viewport_width"] == "1280"]
    assert sorted(int(r["trial_index"]) for r in mine) == list(range(total))
    assert len({r["participant_id"] for r in rows}) == 13
    with (demo_run.out / "reports" / "identify" / "tables" / "exclusions.csv").open() as f:
        assert next(csv.DictReader(f))["participants_left"] == "13"  # the report counts them too
