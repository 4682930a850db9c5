"""One participant in real headless Chromium: Prolific link -> consent -> practice -> every trial by
keyboard, a reload mid-way, a few trials offline, the completion redirect; then the admin export."""
from __future__ import annotations

import csv
import io
import re

import pytest
import requests
from click.testing import CliRunner
from study_fixtures import ServerProcess, make_app, write_design

pytestmark = [pytest.mark.browser, pytest.mark.slow]
N_TRIALS = 12  # 2 practice + 8 main + 2 attention checks


def setup_study(db_url, stimuli, tmp_path):
    from advlegit.study_app.cli import cli
    from advlegit.study_app.db import db

    env = {"DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
           "ADVLEGIT_ADMIN_PASSWORD": "e2e-admin-password"}
    app = make_app(db_url, tmp_path / "inst")
    with app.app_context():  # start from an empty database, so `db upgrade` builds everything
        db.drop_all()
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        db.engine.dispose()
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"], env=env).exit_code == 0
    res = runner.invoke(cli, ["study", "create", "--stimuli", str(stimuli), "--design",
                              str(write_design(tmp_path / "design.toml", "identify"))], env=env)
    assert res.exit_code == 0, res.output
    assert runner.invoke(cli, ["create-admin"], env=env).exit_code == 0
    return res.output.strip().splitlines()[-1]


def wait_shown(page, index):
    # Selectors, not wait_for_function: Playwright polls a string predicate with eval(), which the
    # pages' Content-Security-Policy (script-src 'self') refuses, as it should.
    page.wait_for_selector(f"#task[data-shown='{index}']", state="attached", timeout=15000)


def stored(server, token):
    return requests.get(f"{server.url}/api/p/{token}/state", timeout=10).json()["stored"]


def test_participant_journey_in_chromium(browser, e2e_db_url, e2e_stimuli, tmp_path, shots):
    study_id = setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    with ServerProcess(e2e_db_url, tmp_path / "srv") as server:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        errors, csp = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # The pages must satisfy their own Content-Security-Policy: Chromium logs every refusal.
        page.on("console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None)
        completed = []
        # Nothing leaves the machine: the Prolific completion URL is answered locally.
        context.route("https://app.prolific.co/**", lambda route: (completed.append(route.request.url),
                                                                   route.fulfill(status=200, body="ok")))
        first = page.goto(f"{server.url}/s/{study_id}?PROLIFIC_PID=E2E0001&STUDY_ID=PS1&SESSION_ID=SS1")
        assert "/consent" in page.url
        assert "script-src 'self'" in first.headers["content-security-policy"]
        page.screenshot(path=shots / "consent-1440.png", full_page=True)
        token = re.search(r"/p/([^/]+)/", page.url).group(1)
        page.keyboard.press("Enter")  # "I agree" has focus
        page.wait_for_url("**/instructions")
        page.screenshot(path=shots / "instructions-1440.png", full_page=True)
        page.keyboard.press("Enter")
        page.wait_for_url("**/task")

        answers = {}
        wait_shown(page, 0)
        assert page.locator("#practice-tag").is_visible()
        img = page.locator("#stage img").first
        assert img.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
        assert img.evaluate("i => i.naturalWidth") == 28 and img.bounding_box()["width"] >= 280
        page.screenshot(path=shots / "task-practice-1440.png")
        page.keyboard.press("5")
        answers[0] = "5"
        page.locator("#feedback").wait_for(state="visible")
        page.screenshot(path=shots / "task-feedback-1440.png")
        page.keyboard.press("Enter")

        for i in range(1, N_TRIALS):
            wait_shown(page, i)
            if i == 3:
                page.screenshot(path=shots / "task-main-1440.png")
            assert page.locator("#practice-tag").is_visible() == (i < 2)
            if i == 4:
                # Reload mid-study: the server's pointer brings us back to the next unanswered trial.
                page.locator("#save-status", has_text="saved").wait_for()
                assert stored(server, token) == 4
                page.reload()
                wait_shown(page, 4)
                assert page.locator("#progress").inner_text() == f"Trial 5 of {N_TRIALS}"
            if i == 6:
                page.locator("#save-status", has_text="All answers saved").wait_for()
                context.set_offline(True)
            key = "n" if i == 7 else str(i % 10)
            page.keyboard.press(key)
            answers[i] = "none" if key == "n" else key
            if i == 1:  # second practice trial
                page.locator("#feedback").wait_for(state="visible")
                page.keyboard.press("Enter")
            if i == 8:
                # Three answers made offline wait in the browser's queue, and say so.
                page.locator("#save-status", has_text="waiting").wait_for()
                page.screenshot(path=shots / "task-offline-1440.png")
                assert stored(server, token) == 6
                assert len(page.evaluate("JSON.parse(localStorage.getItem('advlegit-queue-' + "
                                         "document.getElementById('task').dataset.queueKey))")) == 3
                context.set_offline(False)
                page.locator("#save-status", has_text="All answers saved").wait_for(timeout=20000)
                assert stored(server, token) == 9

        page.wait_for_url("**/debrief", timeout=20000)
        page.screenshot(path=shots / "debrief-1440.png", full_page=True)
        page.keyboard.press("Tab")
        page.keyboard.type("The images were clear.")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_url("**/done")
        page.screenshot(path=shots / "done-1440.png")
        assert page.locator("#completion-code").inner_text() == "TESTCODE1"
        assert page.locator("#copy-code").is_visible()  # loopback is a secure context: the clipboard works
        page.wait_for_timeout(1500)
        assert "/done" in page.url  # no automatic redirect: the code stays on screen until the person clicks
        page.click("#completion-link")
        page.wait_for_url("https://app.prolific.co/**", timeout=20000)
        assert completed and completed[-1].endswith("?cc=TESTCODE1")
        assert errors == [] and csp == [], (errors, csp)
        context.close()

        # The admin export holds exactly these responses.
        s = requests.Session()
        login_page = s.get(f"{server.url}/admin/login").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', login_page).group(1)
        r = s.post(f"{server.url}/admin/login", data={"username": "admin", "password": "e2e-admin-password",
                                                      "csrf": csrf})
        assert r.status_code == 200 and "/admin" in r.url
        page_admin = browser.new_page(viewport={"width": 1440, "height": 900})
        page_admin.goto(f"{server.url}/admin/login")
        page_admin.fill("#password", "e2e-admin-password")
        page_admin.keyboard.press("Enter")
        page_admin.wait_for_url("**/admin/")
        page_admin.goto(f"{server.url}/admin/studies/{study_id}")
        page_admin.screenshot(path=shots / "admin-study-1440.png", full_page=True)
        page_admin.close()
        rows = list(csv.DictReader(io.StringIO(s.get(f"{server.url}/admin/studies/{study_id}/export.csv").text)))
        assert [int(r["trial_index"]) for r in rows] == list(range(N_TRIALS))
        assert {int(r["trial_index"]): r["response"] for r in rows} == answers
        assert len({r["response_uuid"] for r in rows}) == N_TRIALS
        assert all(float(r["rt_ms"]) > 0 and r["viewport_width"] == "1440" for r in rows)
        assert {r["participant_state"] for r in rows} == {"code_issued"}
        assert "E2E0001" not in s.get(f"{server.url}/admin/studies/{study_id}/export.csv").text


@pytest.mark.parametrize("width, height", [(375, 740), (1440, 900)])
def test_pages_fit_phone_and_desktop(browser, e2e_db_url, e2e_stimuli, tmp_path, shots, width, height):
    study_id = setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        context = browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 500,
                                      is_mobile=width < 500)
        page = context.new_page()
        page.goto(f"{server.url}/s/{study_id}?PROLIFIC_PID=W{width}")

        def fits(name):
            page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{name} scrolls sideways at {width}px"

        fits("consent")
        page.get_by_role("button", name="I agree, continue").click()
        page.wait_for_url("**/instructions")
        page.get_by_role("button", name="Start").click()
        page.wait_for_url("**/task")
        wait_shown(page, 0)
        fits("task")
        buttons = page.locator("#answers button")
        assert buttons.count() == 11
        for k in range(buttons.count()):
            box = buttons.nth(k).bounding_box()
            assert box["height"] >= 44 and box["width"] >= 44  # touch targets
        img_box = page.locator("#stage img").bounding_box()
        assert img_box["width"] >= min(280, width * 0.7) and img_box["x"] >= 0
        assert img_box["x"] + img_box["width"] <= width
        # Keyboard-only: Tab reaches an answer button and its focus is visible.
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement.tagName + ':' + getComputedStyle(document.activeElement).outlineStyle"
        )
        assert focused.startswith("BUTTON:") and not focused.endswith(":none")
        buttons.nth(3).tap() if width < 500 else buttons.nth(3).click()
        page.locator("#feedback").wait_for(state="visible")
        fits("feedback")
        context.close()


def test_rate_and_compare_pages_at_phone_and_desktop_widths(browser, e2e_db_url, e2e_stimuli, tmp_path, shots):
    """The 1-7 scale and the side-by-side pair fit a 375 px phone and a 1440 px screen, keys work."""
    from advlegit.study_app.cli import cli

    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    ids = {}
    for task in ("rate", "compare"):
        res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(e2e_stimuli), "--design",
                                       str(write_design(tmp_path / f"{task}.toml", task))], env=env)
        assert res.exit_code == 0, res.output
        ids[task] = res.output.strip().splitlines()[-1]
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        for task, key, n_buttons in (("rate", "6", 7), ("compare", "ArrowLeft", 2)):
            for width, height in ((375, 740), (1440, 900)):
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                page.goto(f"{server.url}/s/{ids[task]}?PROLIFIC_PID={task}{width}")
                assert "/consent" in page.url, page.content()[:500]
                page.get_by_role("button", name="I agree, continue").click()
                page.wait_for_url("**/instructions")
                page.get_by_role("button", name="Start").click()
                page.wait_for_url("**/task")
                wait_shown(page, 0)
                page.screenshot(path=shots / f"task-{task}-{width}.png", full_page=True)
                assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
                assert page.locator("#answers button").count() == n_buttons
                imgs = page.locator("#stage img")
                assert imgs.count() == (2 if task == "compare" else 1)
                for k in range(imgs.count()):
                    box = imgs.nth(k).bounding_box()
                    assert box["width"] >= (140 if width < 500 else 280) and box["x"] + box["width"] <= width
                page.keyboard.press(key)
                page.locator("#feedback").wait_for(state="visible")
                context.close()
