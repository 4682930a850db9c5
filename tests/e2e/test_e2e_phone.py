"""Issue 14, items 14-16 in headless Chromium: phones at 320, 360, 375 px portrait and 812x375 landscape
(answers on screen, nothing clipped, no key hints on touch), a held key answers once, and a tab whose link
was superseded stops and says where to go on."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_fixtures import ServerProcess, write_design  # noqa: E402
from test_e2e_browser import setup_study, wait_shown  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
VIEWPORTS = [(320, 640), (360, 740), (375, 812), (812, 375)]


def create(e2e_db_url, e2e_stimuli, tmp_path, task, **kw):
    from advlegit.study_app.cli import cli

    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(e2e_stimuli), "--design",
                                   str(write_design(tmp_path / f"{task}-{len(kw)}.toml", task, **kw))], env=env)
    assert res.exit_code == 0, res.output
    return res.output.strip().splitlines()[-1]


def to_task(page, url):
    page.goto(url)
    page.get_by_role("button", name="I agree, continue").click()
    page.wait_for_url("**/instructions")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/task")
    wait_shown(page, 0)


def stored_for(page, server):
    token = page.url.split("/p/")[1].split("/")[0]
    return requests.get(f"{server.url}/api/p/{token}/state", timeout=10).json()["stored"]


def test_phone_layouts_keep_every_answer_on_screen(browser, e2e_db_url, e2e_stimuli, tmp_path, shots):
    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    ids = {task: create(e2e_db_url, e2e_stimuli, tmp_path, task) for task in ("identify", "rate")}
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        for task, study_id in ids.items():
            for width, height in VIEWPORTS:
                context = browser.new_context(viewport={"width": width, "height": height}, has_touch=True,
                                              is_mobile=True)
                page = context.new_page()
                to_task(page, f"{server.url}/s/{study_id}?PROLIFIC_PID={task}{width}x{height}")
                page.screenshot(path=shots / f"phone-{task}-{width}x{height}.png")
                where = f"{task} at {width}x{height}"
                assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, where
                buttons = page.locator("#answers button")
                for k in range(buttons.count()):
                    box = buttons.nth(k).bounding_box()
                    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{where}: button {k} clipped"
                    assert box["y"] + box["height"] <= height, f"{where}: button {k} below the fold"
                    assert box["width"] >= 36 and box["height"] >= 44, f"{where}: button {k} too small"
                img = page.locator("#stage img").bounding_box()
                assert img["y"] + img["height"] <= height and img["x"] + img["width"] <= width, where
                assert not page.locator("#keys").is_visible(), f"{where}: key hints on a touch screen"
                if task == "rate":  # the scale's ends are on screen too
                    scale = page.locator(".rate-scale").bounding_box()
                    assert scale["x"] + scale["width"] <= width and scale["y"] + scale["height"] <= height, where
                context.close()


def test_a_held_key_answers_one_trial(browser, e2e_db_url, e2e_stimuli, tmp_path):
    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    study_id = create(e2e_db_url, e2e_stimuli, tmp_path, "identify", practice=0)
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        to_task(page, f"{server.url}/s/{study_id}?PROLIFIC_PID=HOLDER")
        page.keyboard.down("3")
        wait_shown(page, 1)
        for _ in range(15):  # what the keyboard sends while the key stays down (repeat = true)
            page.keyboard.down("3")
        # and a keydown without repeat while still held (remote desktops send these)
        page.evaluate("document.dispatchEvent(new KeyboardEvent('keydown', {key: '3', bubbles: true}))")
        deadline = time.time() + 5
        while stored_for(page, server) < 1 and time.time() < deadline:
            time.sleep(0.1)
        page.wait_for_timeout(500)
        assert stored_for(page, server) == 1
        assert page.locator("#task").get_attribute("data-shown") == "1"
        page.keyboard.up("3")
        page.keyboard.press("3")  # released and pressed again: the next trial is answered
        wait_shown(page, 2)
        context.close()


def test_a_superseded_tab_stops_and_says_where_to_go_on(browser, e2e_db_url, e2e_stimuli, tmp_path, shots):
    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    study_id = create(e2e_db_url, e2e_stimuli, tmp_path, "identify", practice=0)
    link = f"/s/{study_id}?PROLIFIC_PID=TWOTABS&STUDY_ID=S&SESSION_ID=T"
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        old_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        old = old_ctx.new_page()
        to_task(old, server.url + link)
        old.keyboard.press("3")
        wait_shown(old, 1)
        old_url = old.url
        new_ctx = browser.new_context(viewport={"width": 1280, "height": 900})  # e.g. the phone
        new = new_ctx.new_page()
        new.goto(server.url + link)  # reopening the recruitment link issues a new link
        new.wait_for_url("**/task")
        wait_shown(new, 1)
        old.keyboard.press("4")  # the old tab's answer is refused; the page stops
        old.locator("#superseded").wait_for(state="visible", timeout=10000)
        assert not old.locator("#answers").is_visible() and not old.locator("#stage").is_visible()
        old.screenshot(path=shots / "superseded-1280.png")
        for key in "5678":
            old.keyboard.press(key)
        assert stored_for(new, server) == 1  # nothing from the old tab after it was superseded
        old.goto(old_url)  # a reload: a readable page, not a bare "Not Found"
        text = old.locator("main").inner_text()
        assert "no longer valid" in text and "newest tab" in text
        new.keyboard.press("5")
        wait_shown(new, 2)
        assert stored_for(new, server) == 2
        old_ctx.close()
        new_ctx.close()
