"""The presentation protocol in real headless Chromium: fixation, a 200 ms image, a 200 ms 1/f-noise mask,
a confidence rating, full screen and a response window, on a few trials; the export carries what the
browser measured."""
from __future__ import annotations

import base64
import csv
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from study_fixtures import ServerProcess, write_design

sys.path.insert(0, str(Path(__file__).resolve().parent))  # --import-mode=importlib: reuse the journey's helpers
from test_e2e_browser import setup_study, stored, wait_shown  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PRESENTATION = """
[presentation]
fixation_ms = 100
exposure_ms = 200
mask = "noise"
mask_ms = 200
response_window_ms = 5000
confidence = true
fullscreen = true
min_refresh_hz = 10
min_viewport_width = 800
min_viewport_height = 600
"""


# Block the page's main thread for 250 ms as soon as the next image is up: the frames it would have drawn
# are lost, so that image stays up ~250 ms. The runner must count the dropped frames and flag the miss.
STALL_NEXT_IMAGE = """() => {
  const stage = document.getElementById("stage");
  const watch = new MutationObserver(() => {
    if (stage.dataset.phase !== "stimulus") return;
    watch.disconnect();
    const until = performance.now() + 250;
    while (performance.now() < until) {}
  });
  watch.observe(stage, { attributes: true, attributeFilter: ["data-phase"] });
}"""


def mask_pixels(page) -> np.ndarray:
    """The grey levels of the noise mask on the stage (drawn before the image's first frame)."""
    # A PNG, not an array of numbers: quick enough to read while the trial's response window runs.
    url = page.evaluate('() => document.querySelector("#stage canvas.mask").toDataURL("image/png")')
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    return np.asarray(img.convert("RGBA"), dtype=float)[:, :, 0]


def assert_one_over_f(grey: np.ndarray) -> None:
    """1/f noise: amplitude falls as 1/f, so radially averaged power against frequency has slope about -2
    on log-log axes (white noise: 0). Fitted below a quarter of the Nyquist frequency, where upscaling
    the noise to the image's size changes nothing."""
    n = min(grey.shape)
    g = grey[:n, :n] - grey[:n, :n].mean()
    power = np.abs(np.fft.fft2(g)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(n) * n, np.fft.fftfreq(n) * n, indexing="ij")
    radius = np.hypot(fx, fy).round().astype(int)
    freqs = np.arange(2, n // 8)
    radial = np.array([power[radius == f].mean() for f in freqs])
    slope = np.polyfit(np.log(freqs), np.log(radial), 1)[0]
    assert -2.6 < slope < -1.4, slope


def test_a_timed_trial_with_a_noise_mask_runs_and_exports_its_timing(browser, e2e_db_url, e2e_stimuli, tmp_path):
    from advlegit.study_app.cli import cli

    setup_study(e2e_db_url, e2e_stimuli, tmp_path)
    env = {"DATABASE_URL": e2e_db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    design = write_design(tmp_path / "timed.toml", "identify", trials=4, practice=1, checks=0, extra=PRESENTATION)
    res = CliRunner().invoke(cli, ["study", "create", "--stimuli", str(e2e_stimuli), "--design", str(design)], env=env)
    assert res.exit_code == 0, res.output
    study_id = res.output.strip().splitlines()[-1]
    with ServerProcess(e2e_db_url, tmp_path / "srv", workers=1) as server:
        context = browser.new_context(viewport={"width": 1024, "height": 800})
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(f"{server.url}/s/{study_id}?PROLIFIC_PID=TIMED1")
        token = re.search(r"/p/([^/]+)/", page.url).group(1)
        page.get_by_role("button", name="I agree, continue").click()
        page.wait_for_url("**/instructions")
        page.get_by_role("button", name="Start").click()  # enabled once the refresh rate is measured
        page.wait_for_url("**/task")
        page.get_by_role("button", name="Continue in full screen").click()
        masks_seen = []
        for index in range(4):
            wait_shown(page, index)
            if index == 2:  # the same trial after a reload gets the same noise; another trial other noise
                first = mask_pixels(page)
                page.reload()
                # Whether the browser left full screen on reload is its own business: click if asked.
                for _ in range(150):
                    if page.locator(f"#task[data-shown='{index}']").count():
                        break
                    if page.locator("#gate-go").is_visible():
                        page.locator("#gate-go").click()
                    page.wait_for_timeout(100)
                wait_shown(page, index)
                assert (mask_pixels(page) == first).all()
                assert_one_over_f(first)
                masks_seen.append(first)
            # The stage runs its phases; the noise mask is a canvas the size of the image.
            box = page.locator("#stage img").bounding_box()
            mask = page.locator("#stage canvas.mask").bounding_box()
            assert (round(mask["width"]), round(mask["height"])) == (round(box["width"]), round(box["height"]))
            if index == 3:
                assert (mask_pixels(page) != masks_seen[0]).mean() > 0.5
                # Leaving full screen is counted on this trial's answer, and the next trial waits for a return.
                assert page.evaluate("() => !!document.fullscreenElement")
                page.evaluate("() => document.exitFullscreen()")
                page.locator("#fullscreen-note").wait_for(state="visible")
            page.locator("#answers button").first.click()
            page.locator("#confidence").wait_for(state="visible")
            page.keyboard.press("3")
            if index == 0:  # practice feedback
                page.locator("#feedback").wait_for(state="visible")
                page.evaluate(STALL_NEXT_IMAGE)
                page.keyboard.press("Enter")
        page.get_by_role("button", name="Continue in full screen").click()
        wait_shown(page, 4)  # the last trial is left unanswered: the response window closes it
        page.wait_for_url("**/debrief", timeout=20000)
        assert stored(server, token) == 5
        assert not errors, errors
        context.close()
    out = tmp_path / "export.csv"
    res = CliRunner().invoke(cli, ["export", "--study", study_id, "-o", str(out)], env=env)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    for row in rows[:4]:
        hz, measured = float(row["refresh_hz"]), float(row["exposure_ms_measured"])
        frame = 1000 / hz
        assert row["exposure_ms_requested"] == "200"
        # By construction a phase ends at the first frame within half a frame of its request.
        assert measured >= 200 - frame / 2 and float(row["mask_ms_measured"]) >= 200 - frame / 2
        assert int(row["dropped_frames"]) >= 0 and row["exposure_missed"] in ("true", "false")
        assert row["confidence"] == "3" and row["response_timed_out"] == "false"
        assert row["focus_lost"] == "false"
    assert [r["fullscreen_exits"] for r in rows] == ["0", "0", "0", "1", "0"]
    stalled = rows[1]
    # >= 249.5: the stall and the frame timestamps are both read from clocks coarsened to 0.1 ms
    assert float(stalled["exposure_ms_measured"]) >= 249.5 and int(stalled["dropped_frames"]) >= 10
    assert stalled["exposure_missed"] == "true"
    last = rows[4]
    assert last["response"] == "timeout" and last["response_timed_out"] == "true" and last["confidence"] == ""
    assert last["response_label"] == "" and float(last["rt_ms"]) >= 5000
