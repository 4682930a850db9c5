"""One row per response: idempotent, validated, private to its participant, complete before any code."""
from __future__ import annotations

import json

from sqlalchemy import func, select
from study_fixtures import answer_body, csrf_of, form, post_answer, prolific_link, start_participant


def n_responses(app) -> int:
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Response

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Response))


def post(client, token, body):
    return post_answer(client, token, body)


def test_duplicate_and_replayed_posts_store_one_row(app, client, study_id):
    token = start_participant(client, study_id)
    body = answer_body(0, "4")
    first = post(client, token, body)
    assert first.status_code == 201 and first.get_json()["duplicate"] is False
    again = post(client, token, body)  # the same request retried (lost reply, double flush)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    replay = post(client, token, answer_body(0, "4"))  # same trial, new uuid (second tab, replayed queue)
    assert replay.status_code == 409 and replay.get_json()["error"] == "already_answered"
    conflict = post(client, token, {**body, "response": "5"})  # same uuid, different answer
    assert conflict.status_code == 409 and conflict.get_json()["error"] == "uuid_conflict"
    assert n_responses(app) == 1
    state = client.get(f"/api/p/{token}/state").get_json()
    assert state["next_index"] == 1 and state["stored"] == 1


BAD = [
    ("not json", None),
    ("list", []),
    ("no uuid", {"uuid": None}),
    ("uuid not a uuid", {"uuid": "123"}),
    ("response out of range", {"response": "12"}),
    ("rating on identify", {"response": "left"}),
    ("response as int", {"response": 3}),
    ("negative index", {"trial_index": -1}),
    ("index as string", {"trial_index": "0"}),
    ("index as bool", {"trial_index": True}),
    ("no such trial", {"trial_index": 999}),
    ("skips ahead", {"trial_index": 1}),
    ("negative rt", {"rt_ms": -5}),
    ("rt as string", {"rt_ms": "fast"}),
    ("naive time", {"shown_at": "2026-11-22T02:00:00"}),
    ("garbage time", {"answered_at": "yesterday"}),
    ("huge screen", {"screen_width": 10**9}),
]


def test_malformed_answers_get_4xx_json_and_change_nothing(app, client, study_id):
    token = start_participant(client, study_id)
    before = client.get(f"/api/p/{token}/state").get_json()
    for name, change in BAD:
        if change is None:
            r = client.post(f"/api/p/{token}/responses", data="{oops", content_type="application/json",
                            headers={"X-CSRF-Token": csrf_of(token)})
        elif isinstance(change, list):
            r = post(client, token, change)
        else:
            r = post(client, token, {**answer_body(0, "3"), **change})
        assert 400 <= r.status_code < 500, name
        body = r.get_json()
        assert body["error"] and body["message"], name
        assert n_responses(app) == 0, name
        assert client.get(f"/api/p/{token}/state").get_json() == before, name
    # The same trial then accepts a well-formed answer: the rejections left no trace.
    assert post(client, token, answer_body(0, "3")).status_code == 201


def test_oversized_body_is_rejected(app, client, study_id):
    token = start_participant(client, study_id)
    r = post(client, token, {**answer_body(0, "3"), "pad": "x" * 100_000})
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    assert n_responses(app) == 0


def test_participants_cannot_touch_each_others_trials(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response

    a = start_participant(client, study_id, "ALICE")
    b = start_participant(client, study_id, "BOB")
    body_b = answer_body(0, "7")
    assert post(client, b, body_b).status_code == 201
    # A replays B's request under A's own token: B's uuid is B's; A's row is not created from it.
    r = post(client, a, body_b)
    assert r.status_code == 409 and r.get_json()["error"] == "uuid_conflict"
    # Unknown or guessed tokens (including B's pseudonymous id) reach nothing.
    with app.app_context():
        # Prolific ids are stored in lower case
        pid_b = db.session.scalar(select(Participant.id).where(Participant.platform_pid == "bob"))
    for fake in (pid_b, "x" * 43, a[:-1] + ("A" if a[-1] != "A" else "B")):
        assert client.get(f"/api/p/{fake}/trials").status_code == 404
        assert post(client, fake, answer_body(1, "1")).status_code == 404
    # A's trial list is A's own, and A's image tokens differ from nothing secret about B.
    ta = client.get(f"/api/p/{a}/trials").get_json()
    assert ta["stored"] == 0 and ta["next_index"] == 0
    with app.app_context():
        rows = db.session.execute(select(Response.participant_id, Response.response)).all()
    assert rows == [(pid_b, "7")]


def test_completion_code_only_after_every_response_is_stored(app, client, study_id):
    token = start_participant(client, study_id)
    trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
    for t in trials[:-1]:
        assert post(client, token, answer_body(t["index"], "1")).status_code == 201
    # One answer missing: no debrief, no done page, no Prolific redirect.
    for path in ("debrief", "done"):
        r = client.get(f"/p/{token}/{path}")
        assert r.status_code == 303 and r.headers["Location"].endswith(f"/p/{token}/task")
    r = client.post(f"/p/{token}/debrief", data=form(token, **{"q0": "x"}))
    assert r.status_code == 303 and "prolific" not in r.headers["Location"]
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "in_task"
    assert post(client, token, answer_body(trials[-1]["index"], "1")).status_code == 201
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "data_complete"
    r = client.post(f"/p/{token}/debrief", data=form(token, **{"q0": "x"}))
    assert r.status_code == 303
    assert prolific_link(client, token) == "https://app.prolific.co/submissions/complete?cc=TESTCODE1"
    # After completion, further answers are refused and nothing changes.
    assert post(client, token, answer_body(0, "2")).status_code == 409
    assert n_responses(app) == len(trials)


def test_every_transition_is_a_timestamped_row_and_reload_resumes(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    token = start_participant(client, study_id)
    for i in range(3):
        post(client, token, answer_body(i, "0"))
    # A reload of any page goes back to the task, and the server pointer says where.
    r = client.get(f"/p/{token}")
    assert r.status_code == 303 and r.headers["Location"].endswith("/task")
    assert client.get(f"/api/p/{token}/trials").get_json()["next_index"] == 3
    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.access_token == token))
        seq = [(t.from_state, t.to_state) for t in p.transitions]
        assert seq == [(None, "entered"), ("entered", "consented"), ("consented", "instructed"),
                       ("instructed", "in_task")]
        ats = [t.at for t in p.transitions]
        assert all(a.tzinfo is not None for a in ats) and ats == sorted(ats)


def test_double_submitted_start_allocates_once(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Trial

    token = start_participant(client, study_id)
    assert client.post(f"/p/{token}/instructions", data=form(token)).status_code == 303  # second click
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Trial)) == 12


def test_timed_out_participant_resumes_without_losing_answers(app, client, study_id):
    from datetime import timedelta

    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant

    token = start_participant(client, study_id, "SLOW")
    assert post(client, token, answer_body(0, "3")).status_code == 201
    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.access_token == token))
        p.last_seen_at = utcnow() - timedelta(hours=2)
        db.session.commit()
    start_participant(client, study_id, "FAST")  # allocation times out stale sessions
    with app.app_context():
        assert db.session.scalar(select(Participant.state).where(Participant.access_token == token)) == "timed_out"
    r = post(client, token, answer_body(1, "3"))
    assert r.status_code == 201 and r.get_json()["state"] == "in_task"
    assert n_responses(app) == 2


def test_withdraw_returns_and_ends_the_session(app, client, study_id):
    token = start_participant(client, study_id)
    assert client.post(f"/p/{token}/withdraw", data=form(token)).status_code == 200
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "returned"
    assert post(client, token, answer_body(0, "3")).status_code == 409
    assert n_responses(app) == 0


def test_api_errors_are_json_and_pages_errors_are_readable(app, client, study_id):
    token = start_participant(client, study_id)
    r = client.get(f"/api/p/{token}/responses")  # wrong method
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"
    assert client.get("/api/nothing-here").get_json()["error"] == "not_found"
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=CONSENTBAD")
    other = r.headers["Location"].rsplit("/", 1)[0]
    r = client.post(f"{other}/consent", data=form(other.rsplit("/", 1)[1], choice="maybe"))
    assert r.status_code == 400 and "I agree" in r.get_data(as_text=True)
    assert client.get(f"/api/p/{other.rsplit('/', 1)[1]}/state").get_json()["state"] == "entered"


def test_allocation_failure_shows_a_page_and_stores_nothing(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Trial

    with app.app_context():  # a design the set cannot serve (more trials per cell than distinct source
        from advlegit.study_app.models import Study  # digits); changed before anyone arrived, while that is allowed

        st = db.session.get(Study, study_id)
        st.design_json = json.dumps({**st.design, "trials": 4000})
        db.session.commit()
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=UNLUCKY")
    base = r.headers["Location"].rsplit("/", 1)[0]
    client.post(f"{base}/consent", data=form(base.rsplit("/", 1)[1], choice="agree"))
    r = client.post(f"{base}/instructions", data=form(base.rsplit("/", 1)[1]))
    assert r.status_code == 503 and "try again later" in r.get_data(as_text=True).lower()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Trial)) == 0
        assert db.session.scalar(select(Participant.state).where(Participant.platform_pid == "unlucky")) == "instructed"


def test_leaving_asks_first(app, client, study_id):
    token = start_participant(client, study_id)
    page = client.get(f"/p/{token}/withdraw")
    assert page.status_code == 200 and "Leave, and let the researchers keep my answers" in page.get_data(as_text=True)
    assert client.get(f"/api/p/{token}/state").get_json()["state"] == "in_task"


def test_fuzzed_bodies_never_crash_and_store_only_valid_answers(app, client, study_id):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    token = start_participant(client, study_id)
    junk = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )
    fields = ["uuid", "trial_index", "response", "rt_ms", "shown_at", "answered_at", "screen_width",
              "device_pixel_ratio"]

    @given(changes=st.dictionaries(st.sampled_from(fields), junk, min_size=1, max_size=4))
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def check(changes):
        before = n_responses(app)
        state = client.get(f"/api/p/{token}/state").get_json()
        r = post(client, token, {**answer_body(state["next_index"], "3"), **changes})
        assert r.status_code < 500
        if r.status_code == 201:
            assert n_responses(app) == before + 1
        else:
            assert 400 <= r.status_code < 500 and r.get_json()["error"]
            assert n_responses(app) == before

    check()
