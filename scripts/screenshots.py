"""Screenshots for docs/screenshots/ from a running `advlegit demo`, in headless Chromium.

    .venv/bin/advlegit demo &                 # wait for "Serving at ..."
    .venv/bin/python scripts/screenshots.py [runs/mnist-demo]

Takes the participant pages of each task (consent, instructions, a trial, the end) at 375 px (phone)
and 1440 px (desktop), the admin dashboard and a study page, and the first page of each report.
Fails if a page scrolls sideways or an image is not drawn pixel-sharp.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SIZES = {"phone": (375, 740), "desktop": (1440, 900)}
KEYS = {"identify": "3", "rate": "5", "compare": "ArrowLeft"}


def check_layout(page: Page, name: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        raise SystemExit(f"{name}: the page scrolls sideways by {overflow} px")
    for img in page.locator("#stage img").all():
        if img.evaluate("i => getComputedStyle(i).imageRendering") != "pixelated":
            raise SystemExit(f"{name}: stimulus image is smoothed, not pixelated")


def shoot(page: Page, name: str, full: bool = True) -> None:
    check_layout(page, name)
    page.screenshot(path=OUT / f"{name}.png", full_page=full)
    print(f"  {OUT / name}.png")


def participant(browser, url: str, task: str, size: str) -> None:
    w, h = SIZES[size]
    context = browser.new_context(viewport={"width": w, "height": h}, is_mobile=size == "phone",
                                  has_touch=size == "phone", device_scale_factor=2 if size == "phone" else 1)
    page = context.new_page()
    page.goto(url)
    if task == "identify":
        shoot(page, f"consent-{size}")
    page.get_by_role("button", name="I agree, continue").click()
    page.wait_for_url("**/instructions")
    if task == "identify":
        shoot(page, f"instructions-{size}")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/task")
    page.locator('#task[data-shown="0"]').wait_for(state="attached", timeout=15000)
    shoot(page, f"task-{task}-{size}", full=False)
    page.keyboard.press(KEYS[task])
    page.locator("#feedback").wait_for(state="visible")
    if task == "identify":
        shoot(page, f"task-feedback-{size}", full=False)
    context.close()


def admin(browser, url: str, password: str, study: str) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/admin/login")
    page.fill("#username", "admin") if page.locator("#username").count() else None
    page.fill("#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url("**/admin/")
    shoot(page, "admin-dashboard-desktop")
    page.goto(f"{url}/admin/studies/{study}")
    shoot(page, "admin-study-desktop")
    context.close()


def reports(browser, run: Path) -> None:
    for size, (w, h) in SIZES.items():
        context = browser.new_context(viewport={"width": w, "height": h})
        page = context.new_page()
        for task in ("identify",):
            page.goto((run / "reports" / task / "report.html").resolve().as_uri())
            page.screenshot(path=OUT / f"report-{task}-{size}.png")  # the first screen, as a reader sees it
            print(f"  {OUT}/report-{task}-{size}.png")
        context.close()


def main(run: Path) -> None:
    state = json.loads((run / "demo-state.json").read_text())
    url = state["server"]["url"]
    password = (run / "admin-password.txt").read_text().strip()
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for task, study in state["studies"].items():
            for size in SIZES:
                participant(browser, f"{url}/s/{study['id']}", task, size)
        admin(browser, url, password, state["studies"]["identify"]["id"])
        reports(browser, run)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/mnist-demo"))
