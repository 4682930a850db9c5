"""Who gets in where: headers and CSP, cookies, CSRF, admin access, other participants' data, session
fixation, escaping, rate limits and login lockout shared through the database, size limits."""
from __future__ import annotations

import csv
import io
import re
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from study_fixtures import answer_body, csrf_of, form, make_app, page_csrf, post_answer, start_participant

PASSWORD = "correct horse battery"


def admin_user(app, username="alice"):
    from advlegit.study_app.cli import cli

    res = CliRunner().invoke(cli, ["create-admin", "--username", username],
                             env={"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                                  "ADVLEGIT_INSTANCE": app.instance_path, "ADVLEGIT_ADMIN_PASSWORD": PASSWORD})
    assert res.exit_code == 0, res.output


def login(client, username="alice", password=PASSWORD, **kw):
    return client.post("/admin/login", data={"username": username, "password": password,
                                             "csrf": page_csrf(client, "/admin/login")}, **kw)


def state_of(client, token):
    return client.get(f"/api/p/{token}/state").get_json()


def n_rows(app, model):
    from advlegit.study_app.db import db

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_pages_carry_a_strict_csp_and_security_headers(app, client, study_id):
    token = start_participant(client, study_id)
    participant_pages = [client.get(f"/p/{token}/task"), client.get(f"/api/p/{token}/trials"), client.get("/")]
    for r in participant_pages:
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # MTurk's worker sites show participant pages in their frame; its submit hosts receive the final form.
        assert "frame-ancestors 'self' https://worker.mturk.com https://workersandbox.mturk.com" in csp
        assert "form-action 'self' https://www.mturk.com https://workersandbox.mturk.com" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "X-Frame-Options" not in r.headers
    admin = client.get("/admin/login")
    assert admin.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in admin.headers["Content-Security-Policy"]
    # The task page loads its script and style from files, versioned by content for long caching.
    page = participant_pages[0].get_data(as_text=True)
    js = re.search(r'<script src="(/static/js/task\.js\?v=[0-9a-f]{12})"', page).group(1)
    css = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]{12})"', page).group(1)
    for url in (js, css):
        r = client.get(url)
        assert r.status_code == 200 and "max-age=31536000" in r.headers["Cache-Control"]


def test_images_have_opaque_names_and_long_cache_lifetimes(app, client, study_id):
    token = start_participant(client, study_id)
    url = client.get(f"/api/p/{token}/trials").get_json()["trials"][0]["image"]
    assert re.fullmatch(r"/img/[A-Za-z0-9_-]{24}", url)
    r = client.get(url)
    assert r.status_code == 200 and r.mimetype == "image/png"
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag = r.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert "Content-Disposition" not in r.headers  # no file name to leak


def test_production_refuses_weak_secrets_and_sends_secure_cookies(tmp_path, monkeypatch):
    from advlegit.study_app import create_app
    from advlegit.study_app.cli import cli
    from advlegit.study_app.security import ConfigError

    base = {"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "INSTANCE_PATH": str(tmp_path / "inst"),
            "PRODUCTION": True}
    monkeypatch.delenv("ADVLEGIT_SECRET_KEY", raising=False)
    monkeypatch.delenv("ADVLEGIT_INSECURE_COOKIES", raising=False)
    monkeypatch.delenv("ADVLEGIT_PRODUCTION", raising=False)
    for weak in (None, "test-secret", "changeme", "short-but-random-3f9a"):
        if weak is None:
            monkeypatch.delenv("ADVLEGIT_SECRET_KEY", raising=False)
        else:
            monkeypatch.setenv("ADVLEGIT_SECRET_KEY", weak)
        with pytest.raises(ConfigError, match="ADVLEGIT_SECRET_KEY"):
            create_app(dict(base))
    # The command refuses before any server starts.
    monkeypatch.setenv("ADVLEGIT_SECRET_KEY", "changeme")
    res = CliRunner().invoke(cli, ["serve", "--production", "--port", "1"],
                             env={"DATABASE_URL": base["DATABASE_URL"], "ADVLEGIT_INSTANCE": base["INSTANCE_PATH"]})
    assert res.exit_code != 0 and "ADVLEGIT_SECRET_KEY" in res.output
    monkeypatch.setenv("ADVLEGIT_SECRET_KEY", "9c1f" * 16)
    app = create_app(dict(base))
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["PROXY_HOPS"] == 1
    with app.app_context():
        from advlegit.study_app.db import db

        db.create_all()
    cookie = app.test_client().get("/admin/login", base_url="https://study.example").headers["Set-Cookie"]
    assert cookie.startswith("__Host-advlegit=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    # Behind the proxy (one hop), https is seen and announced.
    r = app.test_client().get("/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    # The documented switch for plain-http trials (the local demo): cookies without Secure.
    monkeypatch.setenv("ADVLEGIT_INSECURE_COOKIES", "1")
    plain = create_app(dict(base))
    assert not plain.config["SESSION_COOKIE_SECURE"]
    cookie = plain.test_client().get("/admin/login").headers["Set-Cookie"]
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_participant_forms_and_answers_need_their_own_csrf_token(app, client, study_id):
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=CSRF1")
    a = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    b = start_participant(client, study_id, "CSRF2")
    for data in ({"choice": "agree"}, {"choice": "agree", "csrf": ""}, {"choice": "agree", "csrf": csrf_of(b)},
                 {"choice": "agree", "csrf": csrf_of(a)[:-2]}):
        r = client.post(f"/p/{a}/consent", data=data)
        assert r.status_code == 403 and "CSRF" in r.get_data(as_text=True)
        assert state_of(client, a)["state"] == "entered"
    from advlegit.study_app.models import Response

    for headers in ({}, {"X-CSRF-Token": csrf_of(a)}, {"X-CSRF-Token": "x" * 32}):
        r = client.post(f"/api/p/{b}/responses", json=answer_body(0, "3"), headers=headers)
        assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert n_rows(app, Response) == 0 and state_of(client, b)["next_index"] == 0
    for path in ("debrief", "withdraw", "instructions"):
        assert client.post(f"/p/{b}/{path}", data={"csrf": csrf_of(a)}).status_code == 403
    assert state_of(client, b)["state"] == "in_task"
    # The token the page carries is the one that works.
    assert client.post(f"/p/{a}/consent", data=form(a, choice="agree")).status_code == 303
    assert post_answer(client, b, answer_body(0, "3")).status_code == 201


def test_admin_forms_and_login_need_the_session_csrf_token(app, client, study_id):
    admin_user(app)
    r = client.post("/admin/login", data={"username": "alice", "password": PASSWORD})
    assert r.status_code == 403
    other = app.test_client()  # a token from someone else's session is worthless here
    stolen = page_csrf(other, "/admin/login")
    r = client.post("/admin/login", data={"username": "alice", "password": PASSWORD, "csrf": stolen})
    assert r.status_code == 403
    assert client.get("/admin/").status_code == 302
    assert login(client).status_code == 303
    for path, data in ((f"/admin/studies/{study_id}/status", {"status": "closed"}), ("/admin/logout", {})):
        assert client.post(path, data=data).status_code == 403
        assert client.post(path, data={**data, "csrf": stolen}).status_code == 403
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Study

    with app.app_context():
        assert db.session.get(Study, study_id).status == "open"
    assert client.get("/admin/").status_code == 200  # still logged in: the forged logout did nothing


def test_admin_pages_refuse_anonymous_and_participant_sessions(app, client, study_id):
    token = start_participant(client, study_id)  # this client is now a participant
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    with app.app_context():
        pid = db.session.scalar(select(Participant.id))
    gets = ["/admin/", f"/admin/studies/{study_id}", f"/admin/studies/{study_id}/export.csv",
            f"/admin/studies/{study_id}/export.jsonl", f"/admin/studies/{study_id}/debrief.csv"]
    posts = [(f"/admin/studies/{study_id}/status", {"status": "closed"}),
             (f"/admin/participants/{pid}/review", {"review": "excluded"}), ("/admin/logout", {})]
    for c in (client, app.test_client()):
        for path in gets:
            r = c.get(path, headers={"X-CSRF-Token": csrf_of(token)})
            assert r.status_code == 302 and "/admin/login" in r.headers["Location"], path
            assert b"response_uuid" not in r.data
        for path, data in posts:
            c.get("/admin/login")  # holds a valid form token for its own (anonymous) session
            with c.session_transaction() as s:
                data = {**data, "csrf": s.get("csrf", "")}
            assert c.post(path, data=data).status_code == 403, path
    with app.app_context():
        p = db.session.get(Participant, pid)
        assert (p.state, p.review) == ("in_task", "")


def test_a_participant_cannot_read_or_change_anothers_data(app, client, study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response

    a = start_participant(client, study_id, "ALICE")
    b = start_participant(client, study_id, "BOB")
    assert post_answer(client, b, answer_body(0, "7")).status_code == 201
    with app.app_context():
        ids = dict(db.session.execute(select(Participant.platform_pid, Participant.id)).all())
    # B's pseudonymous id, B's study-level ids or a guessed token reach nothing; A's token is A's only.
    for fake in (ids["bob"], ids["alice"], study_id, "' OR '1'='1", "%27%20OR%201=1--"):
        assert client.get(f"/api/p/{fake}/trials").status_code == 404
        assert client.get(f"/api/p/{fake}/state").status_code == 404
        assert client.post(f"/api/p/{fake}/responses", json=answer_body(1, "1"),
                           headers={"X-CSRF-Token": csrf_of(unquote(fake))}).status_code == 404
        assert client.get(f"/p/{fake}/task").status_code == 404
    # A cannot act on B with A's credentials, nor take over B's answer.
    r = client.post(f"/api/p/{b}/responses", json=answer_body(1, "1"), headers={"X-CSRF-Token": csrf_of(a)})
    assert r.status_code == 403
    r = post_answer(client, a, {**answer_body(0, "7"), "uuid": _uuid_of(app, ids["bob"])})
    assert r.status_code == 409 and r.get_json()["error"] == "uuid_conflict"
    ta = client.get(f"/api/p/{a}/trials").get_json()
    assert ta["stored"] == 0 and not {t["image"] for t in ta["trials"]} & {None}
    with app.app_context():
        assert db.session.execute(select(Response.participant_id, Response.response)).all() == [(ids["bob"], "7")]


def _uuid_of(app, participant_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Response

    with app.app_context():
        return db.session.scalar(select(Response.uuid).where(Response.participant_id == participant_id))


def test_session_fixation_fails_at_login_and_at_entry(app, client, study_id):
    admin_user(app)
    # Admin: a cookie handed out before login (planted by an attacker) never becomes a logged-in one.
    client.get("/admin/login")
    planted = client.get_cookie("session").value
    with client.session_transaction() as s:
        csrf_before = s["csrf"]
    assert login(client).status_code == 303
    after = client.get_cookie("session").value
    assert after != planted
    with client.session_transaction() as s:
        assert s["admin"] == "alice" and s["csrf"] != csrf_before
    attacker = app.test_client()
    attacker.set_cookie("session", planted)
    assert attacker.get("/admin/").status_code == 302
    # A logged-in cookie copied elsewhere dies when the password is reset (create-admin again).
    thief = app.test_client()
    thief.set_cookie("session", after)
    assert thief.get("/admin/").status_code == 200
    admin_user(app)
    assert thief.get("/admin/").status_code == 302 and client.get("/admin/").status_code == 302
    assert login(client).status_code == 303
    # Participants: coming back through the recruitment link issues a new link; the old one is dead.
    first = client.get(f"/s/{study_id}?PROLIFIC_PID=FIX1")
    old = re.search(r"/p/([^/]+)/", first.headers["Location"]).group(1)
    again = client.get(f"/s/{study_id}?PROLIFIC_PID=FIX1")
    new = re.search(r"/p/([^/]+)/", again.headers["Location"]).group(1)
    assert new != old
    assert client.get(f"/api/p/{old}/state").status_code == 404
    assert client.post(f"/p/{old}/consent", data=form(old, choice="agree")).status_code == 404
    assert state_of(client, new)["state"] == "entered"


def test_free_text_is_escaped_on_admin_pages_and_exported(app, client, study_id, tmp_path):
    from advlegit.study_app.cli import cli
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Response

    evil = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>'; DROP TABLE responses; --"
    sid = study_id
    with app.app_context():  # this design asks no debrief questions: ask one (before anyone arrived: the
        from advlegit.study_app.models import Study  # design of a started study is locked)

        st = db.session.get(Study, sid)
        design = st.design
        design["debrief_questions"] = ["Anything to tell us? <b>bold</b>"]
        st.design_json = __import__("json").dumps(design)
        db.session.commit()
    token = start_participant(client, sid, "EVIL")
    for t in client.get(f"/api/p/{token}/trials").get_json()["trials"]:
        assert post_answer(client, token, answer_body(t["index"], "2")).status_code == 201
    assert client.post(f"/p/{token}/debrief", data=form(token, q0=evil)).status_code == 303
    admin_user(app)
    login(client)
    page = client.get(f"/admin/studies/{sid}").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert n_rows(app, Response) == 12  # the SQL in the text was data, nothing else
    rows = list(csv.DictReader(io.StringIO(client.get(f"/admin/studies/{sid}/debrief.csv").get_data(as_text=True))))
    assert [(r["question"], r["answer"]) for r in rows] == [("Anything to tell us? <b>bold</b>", evil)]
    out = tmp_path / "resp.csv"
    res = CliRunner().invoke(cli, ["export", "--study", sid, "-o", str(out)],
                             env={"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                                  "ADVLEGIT_INSTANCE": app.instance_path})
    assert res.exit_code == 0, res.output
    side = list(csv.DictReader((tmp_path / "resp.debrief.csv").open()))
    assert side[0]["answer"] == evil and side[0]["participant_state"] == "code_issued"


def test_rate_limits_are_counted_in_the_database_across_app_processes(app, db_url, study_id, tmp_path):
    from advlegit.study_app.models import RateCounter

    # Two app instances = two servers behind one proxy: they share one budget through the database.
    one = make_app(db_url, tmp_path / "one", RATE_ENTRY_PER_IP=3, RATE_ANSWERS_PER_PARTICIPANT=4).test_client()
    two = make_app(db_url, tmp_path / "two", RATE_ENTRY_PER_IP=3, RATE_ANSWERS_PER_PARTICIPANT=4).test_client()
    codes = [c.get(f"/s/{study_id}?PROLIFIC_PID=R{i}").status_code for i, c in enumerate((one, two, one, two))]
    assert codes == [303, 303, 303, 429]
    r = one.get(f"/s/{study_id}?PROLIFIC_PID=R9")
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "Too many requests" in r.get_data(as_text=True)
    # Another address (a different lab) is not affected.
    assert one.get(f"/s/{study_id}?PROLIFIC_PID=R10", environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code == 303
    # Answers: per participant link, JSON 429 the browser retries later; nothing stored by the refusals.
    token = start_participant(app.test_client(), study_id, "R11")
    for i in range(4):
        c = (one, two)[i % 2]
        assert post_answer(c, token, answer_body(i, "1")).status_code == 201
    r = post_answer(two, token, answer_body(4, "1"))
    assert r.status_code == 429 and r.get_json()["error"] == "too_many_requests" and r.headers["Retry-After"]
    assert state_of(one, token)["stored"] == 4
    assert n_rows(app, RateCounter) >= 3


def test_admin_login_lockout_is_shared_and_keyed_by_user_and_address(app, db_url, tmp_path):
    admin_user(app)
    one = make_app(db_url, tmp_path / "one", LOGIN_MAX_FAILURES=3).test_client()
    two = make_app(db_url, tmp_path / "two", LOGIN_MAX_FAILURES=3).test_client()
    assert [login(c, password="guess").status_code for c in (one, two, one)] == [401, 401, 401]
    # Locked: even the right password is refused, on either server, with no password checked.
    for c in (one, two):
        r = login(c)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
        assert c.get("/admin/").status_code == 302
    # The same user from another address is not locked out (an attacker cannot lock the researcher out).
    elsewhere = {"REMOTE_ADDR": "198.51.100.20"}
    assert login(two, environ_base=elsewhere).status_code == 303
    # The per-address limit stops guessing across many usernames.
    three = make_app(db_url, tmp_path / "three", LOGIN_MAX_FAILURES_PER_IP=4).test_client()
    addr = {"REMOTE_ADDR": "198.51.100.30"}
    codes = [login(three, username=f"user{i}", password="x", environ_base=addr).status_code for i in range(5)]
    assert codes == [401, 401, 401, 401, 429]


def test_request_size_limits(app, client, study_id):
    token = start_participant(client, study_id)
    r = post_answer(client, token, {**answer_body(0, "3"), "pad": "x" * 70_000})
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    r = client.post(f"/p/{token}/debrief", data=form(token, q0="x" * 70_000))
    assert r.status_code == 413
    r = client.post("/admin/login", data={"username": "u" * 200_000, "password": "x"})
    assert r.status_code == 413
    parts = {f"f{i}": (io.BytesIO(b"1"), f"f{i}.txt") for i in range(200)}  # multipart: MAX_FORM_PARTS
    r = client.post(f"/p/{token}/debrief", data=parts | {"csrf": csrf_of(token)}, content_type="multipart/form-data")
    assert r.status_code == 413
    assert state_of(client, token)["stored"] == 0


def test_health_endpoints(app, client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.data == b"ok\n"
    assert client.get("/readyz").status_code == 200


@pytest.mark.slow
def test_serve_production_over_plain_http_with_the_documented_switch(app, db_url, study_id, tmp_path):
    """`advlegit serve --production` (gunicorn) end to end: health, headers, and an admin login over
    plain http only with ADVLEGIT_INSECURE_COOKIES=1 (the switch for a local demo)."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import requests

    admin_user(app)
    for insecure in ("1", "0"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": str(tmp_path / "srv"),
               "ADVLEGIT_SECRET_KEY": "a" * 8 + "9f3c" * 8, "ADVLEGIT_INSECURE_COOKIES": insecure}
        log = (tmp_path / f"serve-{insecure}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-c", "from advlegit.study_app.cli import cli; cli()", "serve",
                                 "--production",
                                 "--port", str(port), "--workers", "1", "--threads", "2", "--no-access-log"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(150):
                try:
                    if requests.get(base + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.RequestException:
                    time.sleep(0.2)
            s = requests.Session()
            page = s.get(base + "/admin/login", timeout=10)
            assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
            cookie = page.headers["Set-Cookie"]
            assert ("Secure" in cookie) == (insecure == "0") and "HttpOnly" in cookie
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            r = s.post(base + "/admin/login", data={"username": "alice", "password": PASSWORD, "csrf": csrf},
                       allow_redirects=False, timeout=10)
            if insecure == "1":
                assert r.status_code == 303 and s.get(base + "/admin/", timeout=10).status_code == 200
            else:  # the browser keeps a Secure cookie away from http: the form cannot even be posted
                assert r.status_code == 403
            assert requests.get(f"{base}/s/{study_id}?PROLIFIC_PID=SRV{insecure}", allow_redirects=False,
                                timeout=10).status_code == 303
        finally:
            proc.terminate()
            proc.wait(20)
            log.close()
        # every worker built the open study's caches before its first request (study_app/warm.py)
        assert "warm in" in (tmp_path / f"serve-{insecure}.log").read_text() and "open studies: 1" in \
            (tmp_path / f"serve-{insecure}.log").read_text()
