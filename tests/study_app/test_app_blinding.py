"""Nothing a participant's browser receives names a defense, attack or model."""
from __future__ import annotations

import re

import pytest

from study_fixtures import SECRET_NAMES, answer_body, create_study, form, post_answer

PATTERN = re.compile("|".join(re.escape(n) for n in SECRET_NAMES), re.IGNORECASE)


def _check(resp, what):
    blob = resp.get_data() + str(dict(resp.headers)).encode()
    m = PATTERN.search(blob.decode("latin-1"))
    assert m is None, f"{what} leaks {m.group(0)!r}"
    return resp


@pytest.mark.parametrize("task", ["identify", "rate", "compare"])
def test_no_participant_facing_response_names_a_defense_attack_or_model(app, client, stimulus_dir, tmp_path, task):
    study_id = create_study(app, stimulus_dir, tmp_path, task)
    # The fixture's PNGs carry text chunks naming the defense: the served copies must not.
    assert any(PATTERN.search(p.read_bytes().decode("latin-1")) for p in (stimulus_dir / "images").glob("stim-*"))
    r = _check(client.get(f"/s/{study_id}?PROLIFIC_PID=BLIND&STUDY_ID=S&SESSION_ID=X"), "entry")
    base = r.headers["Location"].rsplit("/", 1)[0]
    token = base.rsplit("/", 1)[1]
    _check(client.get(f"{base}/consent"), "consent page")
    _check(client.post(f"{base}/consent", data=form(token, choice="agree")), "consent post")
    _check(client.get(f"{base}/instructions"), "instructions page")
    _check(client.post(f"{base}/instructions", data=form(token)), "start")
    _check(client.get(f"{base}/task"), "task page")
    for asset in ("js/task.js", "css/app.css"):
        _check(client.get(f"/static/{asset}"), asset)
    trials = _check(client.get(f"/api/p/{token}/trials"), "trial list").get_json()
    answer = {"identify": "3", "rate": "4", "compare": "left"}[task]
    for t in trials["trials"]:
        for url in filter(None, (t["image"], t["image_b"])):
            assert re.fullmatch(r"/img/[A-Za-z0-9_-]{20,}", url), url  # opaque, no manifest id
            img = _check(client.get(url), f"image {url}")
            assert img.mimetype == "image/png" and img.data.startswith(b"\x89PNG")
            assert b"tEXt" not in img.data and b"iTXt" not in img.data and b"zTXt" not in img.data
        _check(post_answer(client, token, answer_body(t["index"], answer)), "response reply")
    _check(client.get(f"/api/p/{token}/state"), "state")
    _check(client.get(f"{base}/debrief"), "debrief page")
    _check(client.post(f"{base}/debrief", data=form(token, q0="ok")), "debrief post")
    _check(client.get(f"{base}/done"), "completion")
    # Error replies too.
    _check(post_answer(client, token, {"uuid": "x"}), "error reply")


def test_templates_are_ready_for_a_strict_csp():
    """No inline scripts, event-handler attributes, inline styles or third-party URLs in any template."""
    from pathlib import Path

    import study_app

    root = Path(study_app.__file__).parent
    for path in list((root / "templates").rglob("*.html")) + list((root / "static").rglob("*.*")):
        text = path.read_text()
        if path.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {path.name}"
            assert not re.search(r"\son[a-z]+\s*=", text), f"event-handler attribute in {path.name}"
            assert not re.search(r"\sstyle\s*=", text), f"inline style in {path.name}"
        assert not re.search(r"https?://(?!app\.prolific\.co)", text.replace("http://www.w3.org", "")), \
            f"external URL in {path.name}"
