"""Every task type in the registry in real headless Chromium: its renderer (js/tasks/<task>.js) offers
exactly the answers the server accepts, the shared runner stores a click, and the practice feedback
says right or wrong by the same rule the server applies to attention checks."""
from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from click.testing import CliRunner
from study_fixtures import ServerProcess, write_design

from advlegit.study_app.tasks import TASKS

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: reuse the journey's helpers
from test_e2e_browser import setup_study, stored, wait_shown  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_every_task_renderer_matches_its_plugin(browser, e2e_db_url, e2e_stimuli, tmp_path):
    from advlegit.study_app.cli import cli

    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    ids = {}
    for task in TASKS:
        res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(e2e_stimuli), "--design",
                                       str(write_design(tmp_path / f"{task}.toml", task))], env=env)
        assert res.exit_code == 0, res.output
        ids[task] = res.output.strip().splitlines()[-1]
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        for task, plugin in TASKS.items():
            context = browser.new_context(viewport={"width": 1024, "height": 800})
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
            page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)  # noqa: B023
            page.goto(f"{server.url}/s/{ids[task]}?PROLIFIC_PID=R{task}")
            token = re.search(r"/p/([^/]+)/", page.url).group(1)
            page.get_by_role("button", name="I agree, continue").click()
            page.wait_for_url("**/instructions")
            page.get_by_role("button", name="Start").click()
            page.wait_for_url("**/task")
            wait_shown(page, 0)
            buttons = page.locator("#answers button")
            values = [buttons.nth(k).get_attribute("data-value") for k in range(buttons.count())]
            assert sorted(values) == sorted(plugin.responses), (task, values)
            assert page.locator("#stage img").count() == plugin.n_images
            assert page.locator("#keys").inner_text() == plugin.keys()
            # Every answer is reachable without scrolling on a 1024 x 800 screen (a 1-7 scale on one row).
            bottoms = [buttons.nth(k).bounding_box()["y"] + buttons.nth(k).bounding_box()["height"]
                       for k in range(buttons.count())]
            assert max(bottoms) <= 800, (task, max(bottoms))
            trials = requests.get(f"{server.url}/api/p/{token}/trials", timeout=10).json()["trials"]
            for index in (0, 1):  # the two practice trials, answered with the first button
                assert trials[index]["practice"]
                wait_shown(page, index)
                buttons.first.click()
                page.locator("#feedback").wait_for(state="visible")
                right = plugin.attention_passed(SimpleNamespace(expected=trials[index]["expected"]), values[0])
                assert page.locator("#feedback-text").inner_text().startswith("Well done." if right else "Not quite.")
                if index == 0:
                    page.keyboard.press("Enter")
            # The status line says so once the queue is empty on a trial after the first.
            page.locator("#save-status", has_text="All answers saved").wait_for()
            assert stored(server, token) == 2
            assert not errors, errors
            context.close()
