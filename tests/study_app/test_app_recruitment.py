"""Prolific, MTurk and anonymous links; one platform id takes a study once; bad links change nothing."""
from __future__ import annotations

import re
import subprocess
import sys

from sqlalchemy import func, select
from study_fixtures import TEST_SECRET, ServerProcess, answer_body, form, post_answer


def n_participants(app):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Participant))


def finish(client, location):
    token = re.search(r"/p/([^/]+)/", location).group(1)
    client.post(f"/p/{token}/consent", data=form(token, **{"choice": "agree"}))
    client.post(f"/p/{token}/instructions", data=form(token))
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"]:
        assert post_answer(client, token, answer_body(t["index"], "1")).status_code == 201
    assert client.post(f"/p/{token}/debrief", data=form(token, **{})).status_code == 303
    return token


def test_mturk_preview_then_accept_then_submit_form(app, client, study_id):
    r = client.get(f"/s/{study_id}?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=H1")
    assert r.status_code == 200 and "preview" in r.get_data(as_text=True).lower()
    assert n_participants(app) == 0
    q = "assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https%3A%2F%2Fworkersandbox.mturk.com"
    r = client.get(f"/s/{study_id}?{q}")
    assert r.status_code == 303
    token = finish(client, r.headers["Location"])
    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="A1"' in page and 'method="post"' in page


def test_bad_mturk_links_are_refused(app, client, study_id):
    for q in ("assignmentId=A1&hitId=H1&workerId=W1&turkSubmitTo=https%3A%2F%2Fevil.example",
              "assignmentId=A1&hitId=H1&turkSubmitTo=https%3A%2F%2Fwww.mturk.com",
              "PROLIFIC_PID=%3Cscript%3E"):
        r = client.get(f"/s/{study_id}?{q}")
        assert r.status_code == 400, q
    assert client.get("/s/nosuchstudy?PROLIFIC_PID=A").status_code == 404
    assert n_participants(app) == 0


def test_same_platform_id_cannot_take_a_study_twice(app, client, study_id):
    first = client.get(f"/s/{study_id}?PROLIFIC_PID=TWICE&STUDY_ID=S&SESSION_ID=1")
    # Coming back mid-study resumes the same session instead of starting a second one.
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=TWICE&STUDY_ID=S&SESSION_ID=2")
    # ... under a new secret link (no fixation): the old link is dead, the participant is the same one.
    assert again.status_code == 303 and again.headers["Location"] != first.headers["Location"]
    old = re.search(r"/p/([^/]+)/", first.headers["Location"]).group(1)
    assert client.get(f"/p/{old}/consent").status_code == 404
    assert n_participants(app) == 1
    finish(client, again.headers["Location"])
    after = client.get(f"/s/{study_id}?PROLIFIC_PID=TWICE&STUDY_ID=S&SESSION_ID=3")
    assert after.status_code == 303 and after.headers["Location"].endswith("/done")  # shows their code again
    # Declined consent: a new visit is refused, not a fresh start.
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=DECLINER")
    token = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    client.post(f"/p/{token}/consent", data=form(token, **{"choice": "decline"}))
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=DECLINER").status_code == 403
    assert n_participants(app) == 2


def test_anonymous_links_get_their_own_code(app, client, study_id):
    codes = set()
    for _ in range(2):
        r = client.get(f"/s/{study_id}")
        token = finish(client, r.headers["Location"])
        page = client.get(f"/p/{token}/done").get_data(as_text=True)
        codes.add(re.search(r'id="completion-code">([A-Z0-9]+)<', page).group(1))
    assert len(codes) == 2 and n_participants(app) == 2


def test_full_study_turns_new_people_away(app, client, stimulus_dir, tmp_path):
    from study_fixtures import create_study

    sid = create_study(app, stimulus_dir, tmp_path, "rate", target=1)
    finish(client, client.get(f"/s/{sid}?PROLIFIC_PID=ONE").headers["Location"])
    assert client.get(f"/s/{sid}?PROLIFIC_PID=TWO").status_code == 410
    assert n_participants(app) == 1


def test_bots_command_over_http(app, db_url, stimulus_dir, tmp_path):
    """The real `advlegit bots` command (subprocess) against a real server, answers read from the DB;
    with a known effect (only gradreg_dbp images are named as their target) the export shows exactly it."""
    import csv

    from study_fixtures import create_study

    sid = create_study(app, stimulus_dir, tmp_path, "identify", trials=4, practice=1, checks=1)
    # Bots beside the server share its secret (ServerProcess: TEST_SECRET), so they are stored as simulated.
    env_extra = {"DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
                 "ADVLEGIT_SECRET_KEY": TEST_SECRET}
    code = ("import sys; from advlegit.study_app.cli import cli; "
            "sys.exit(cli.main(sys.argv[1:], prog_name='advlegit', standalone_mode=True))")
    env = {**__import__("os").environ, **env_extra}
    with ServerProcess(db_url, tmp_path / "srv") as srv:
        out = subprocess.run([sys.executable, "-c", code, "bots", "--url", srv.url, "--study", sid, "-n", "3",
                              "--model", "effect", "--effect-prob", "gradreg_dbp=1", "--noise", "0"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 bots completed, 18 responses" in out.stdout
    assert n_participants(app) == 3
    export = subprocess.run([sys.executable, "-c", code, "export", "--study", sid, "-o", str(tmp_path / "x.csv")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    rows = list(csv.DictReader((tmp_path / "x.csv").open()))
    main = [r for r in rows if r["trial_kind"] == "main"]
    assert len(main) == 12
    assert all((r["target_hit"] == "true") == (r["defense"] == "gradreg_dbp") for r in main)
    assert all(r["original_hit"] == "true" for r in main if r["defense"] != "gradreg_dbp")
    assert all(r["attention_passed"] == "true" for r in rows if r["is_attention_check"] == "true")


def test_closing_a_study_stops_new_arrivals_but_lets_people_finish(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Study

    first = client.get(f"/s/{study_id}?PROLIFIC_PID=INSIDE")
    with app.app_context():
        db.session.get(Study, study_id).status = "closed"
        db.session.commit()
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=OUTSIDE").status_code == 410
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=INSIDE")
    # ... under a new secret link (no fixation): the old link is dead, the participant is the same one.
    assert again.status_code == 303 and again.headers["Location"] != first.headers["Location"]
    old = re.search(r"/p/([^/]+)/", first.headers["Location"]).group(1)
    assert client.get(f"/p/{old}/consent").status_code == 404
    assert n_participants(app) == 1
    finish(client, again.headers["Location"])
    assert n_participants(app) == 1
