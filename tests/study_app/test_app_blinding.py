"""Nothing a participant's browser receives names a defense, attack or model."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select
from study_fixtures import SECRET_NAMES, answer_body, create_study, form, post_answer, valid_answers

from advlegit.study_app.tasks import TASKS

PATTERN = re.compile("|".join(re.escape(n) for n in SECRET_NAMES), re.IGNORECASE)


def _check_reply(resp, what, pattern: re.Pattern = PATTERN):
    blob = resp.get_data() + str(dict(resp.headers)).encode()
    m = pattern.search(blob.decode("latin-1"))
    assert m is None, f"{what} leaks {m.group(0)!r}"
    return resp


# A control must not announce itself either: no kind, twin or control name reaches the participant.
CONTROL_PATTERN = re.compile("|".join(re.escape(n) for n in SECRET_NAMES + ["control_flip", "control_noise",
                                                                            "adversarial", "twin", "-flip",
                                                                            "-noise"]), re.IGNORECASE)


@pytest.mark.parametrize("task", [str(t) for t in TASKS])
def test_no_participant_facing_response_names_a_defense_attack_or_model(app, client, stimulus_dir, tmp_path, task):
    _walk_participant(app, client, stimulus_dir, tmp_path, task)


@pytest.mark.parametrize("task", ["identify", "compare"])
def test_controls_are_blinded_like_every_stimulus(app, client, stimulus_dir_v2, tmp_path, task):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Image, Participant, Trial

    token = _walk_participant(app, client, stimulus_dir_v2, tmp_path, task, CONTROL_PATTERN,
                              trials=12 if task == "identify" else 18)
    with app.app_context():  # the walk did show controls
        kinds = db.session.scalars(select(Image.stimulus_kind).join(Trial, Trial.image_id == Image.id)
                                   .join(Participant).where(Participant.access_token == token)).all()
    assert {"control_flip", "control_noise"} <= set(kinds)


def _walk_participant(app, client, stimulus_dir, tmp_path, task, pattern: re.Pattern = PATTERN, **design) -> str:
    """One participant through every page and endpoint, checking each reply against `pattern`."""
    study_id = create_study(app, stimulus_dir, tmp_path, task, **design)

    def _check(resp, what):
        return _check_reply(resp, what, pattern)

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
    for asset in ("js/task.js", TASKS[task].renderer, "css/app.css"):
        _check(client.get(f"/static/{asset}"), asset)
    trials = _check(client.get(f"/api/p/{token}/trials"), "trial list").get_json()
    answers = valid_answers(task)
    answer = answers[len(answers) // 2]
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
    done = _check(client.get(f"{base}/done"), "completion")
    # ... which explains the study (the default text, participants' only one about it) and is still blinded.
    assert "What this study was about" in done.get_data(as_text=True)
    # Error replies too.
    _check(post_answer(client, token, {"uuid": "x"}), "error reply")
    return token


def test_templates_are_ready_for_a_strict_csp():
    """No inline scripts, event-handler attributes, inline styles or third-party URLs in any template."""
    from pathlib import Path

    from advlegit import study_app
    root = Path(study_app.__file__).parent
    for path in list((root / "templates").rglob("*.html")) + list((root / "static").rglob("*.*")):
        text = path.read_text()
        if path.suffix == ".html":
            # A JSON data block (the page's string catalogue) is not run, so the CSP does not apply to it.
            assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/json\"))[^>]*>", text), \
                f"inline script in {path.name}"
            assert not re.search(r"\son[a-z]+\s*=", text), f"event-handler attribute in {path.name}"
            assert not re.search(r"\sstyle\s*=", text), f"inline style in {path.name}"
        assert not re.search(r"https?://(?!app\.prolific\.co)", text.replace("http://www.w3.org", "")), \
            f"external URL in {path.name}"
