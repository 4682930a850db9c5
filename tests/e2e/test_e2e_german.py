"""Issue 17 item 3: a whole participant run of a German study in real Chromium, for identify and rate:
consent -> instructions -> practice with feedback -> trials -> debrief -> completion code, every page
with lang="de", the browser's own strings (progress, save status, buttons, scale) in German, no English
UI string on any page, and no page error or CSP refusal. Screenshots in test-artifacts/screenshots."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from study_fixtures import ServerProcess, write_german_design

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: reuse the journey's helpers
from test_e2e_browser import setup_study, stored, wait_shown  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study_app"))
from test_app_i18n import english_in  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def german_page(page, what):
    assert page.locator("html").get_attribute("lang") == "de", what
    found = english_in(page.locator("body").inner_text())
    assert not found, (what, found)


def test_a_german_participant_run_in_chromium(browser, e2e_db_url, e2e_stimuli, tmp_path, shots):
    from advlegit.study_app.cli import cli

    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    ids = {}
    for task in ("identify", "rate"):
        res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(e2e_stimuli), "--design",
                                       str(write_german_design(tmp_path / f"{task}.toml", task, checks=1))], env=env)
        assert res.exit_code == 0, res.output
        ids[task] = res.output.strip().splitlines()[-1]
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        for task, key in (("identify", "3"), ("rate", "4")):
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023
            page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)  # noqa: B023
            page.goto(f"{server.url}/s/{ids[task]}?PROLIFIC_PID=DE{task}&STUDY_ID=S&SESSION_ID=X{task}")
            token = re.search(r"/p/([^/]+)/", page.url).group(1)
            german_page(page, "consent")
            page.get_by_role("button", name="Ich stimme zu, weiter").click()
            page.wait_for_url("**/instructions")
            german_page(page, "instructions")
            page.get_by_role("button", name="Starten").click()
            page.wait_for_url("**/task")
            wait_shown(page, 0)
            assert page.locator("#progress").inner_text() == "Durchgang 1 von 11"
            assert page.locator("#practice-tag").inner_text() == "Übung"
            if task == "identify":
                assert page.locator("#prompt").inner_text() == "Welche Ziffer ist das?"
                assert page.get_by_role("button", name="Keine Ziffer").count() == 1
            else:
                assert re.fullmatch(r"Wie sehr sieht das nach einer \d aus\?", page.locator("#prompt").inner_text())
                assert page.locator(".rate-scale").inner_text().startswith("1 = überhaupt nicht")
            german_page(page, f"{task} trial 1")
            for index in range(11):
                wait_shown(page, index)
                page.keyboard.press(key)
                if index < 2:  # practice: feedback in German, then Enter
                    page.locator("#feedback").wait_for(state="visible")
                    assert re.match(r"(Gut gemacht\.|Nicht ganz\.) Das ", page.locator("#feedback-text").inner_text())
                    if index == 1:
                        page.locator("#save-status", has_text="Alle Antworten gespeichert").wait_for()
                        german_page(page, f"{task} feedback")
                        page.screenshot(path=str(shots / f"german-{task}-feedback.png"))
                    page.keyboard.press("Enter")
            page.wait_for_url("**/debrief", timeout=20000)
            assert stored(server, token) == 11
            german_page(page, "debrief")
            page.locator("textarea").first.fill("Alles klar.")
            page.get_by_role("button", name="Abschließen").click()
            page.wait_for_url("**/done")
            german_page(page, "done")
            assert page.get_by_role("heading", level=1).inner_text() == "Vielen Dank!"
            # Below the code, what the study was about: the platform's default, in German.
            assert page.get_by_role("heading", level=2).inner_text() == "Worum es in dieser Studie ging"
            assert page.get_by_role("link", name="Zurück zu Prolific").count() == 1
            page.screenshot(path=str(shots / f"german-{task}-done.png"))
            assert not errors, errors
            context.close()
