"""Hostile input, property-based: malformed JSON, wrong types, huge bodies, out-of-range answers, other
participants' ids, tokens and CSRF tokens, replayed requests, SQL and script injection in free text,
thrown at every participant and admin endpoint. Every such request gets a 4xx (JSON with an `error`
for the API and for JSON requests; a readable HTML page for page URLs and form posts), never a 5xx,
names nothing secret, and leaves the database exactly as it was: every table's rows are checksummed
before and after (except `rate_counters`, whose job is to count these requests).

The one 2xx: an exact replay of an answer the server already stored is acknowledged as a duplicate
(200, `"duplicate": true`) and stores nothing, which is how a retrying browser learns it is done.
"""
from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from study_fixtures import SECRET_NAMES, answer_body, csrf_of, form, page_csrf, post_answer, start_participant

INJECTIONS = ["' OR '1'='1", "'; DROP TABLE responses; --", "1; SELECT pg_sleep(5)--", "\" OR 1=1 --",
              "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "{{7*7}}", "${jndi:ldap://x/a}",
              "../../../etc/passwd", "\x00", "%00", "\u202e\u0000", "😀" * 20, "a" * 5000, "", " ", "null"]
LEAK = re.compile("|".join(re.escape(n) for n in SECRET_NAMES), re.IGNORECASE)
PASSWORD = "correct horse battery"

free_text = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=40))
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | free_text,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(free_text, inner, max_size=3),
                    max_leaves=8)
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")

INVALID_FIELDS = {
    "uuid": st.one_of(free_text, st.integers(), st.none(), st.just("4497FFF0-9192-4900-B9F0-4BE19E359A52")),
    "trial_index": st.one_of(st.integers(max_value=-1), st.integers(min_value=10_001), free_text, st.booleans(),
                             st.floats(allow_nan=True), st.none()),
    "response": st.one_of(free_text.filter(lambda s: s not in {str(d) for d in range(10)} | {"none"}),
                          st.integers(), st.none(), st.lists(st.just("3"), max_size=2)),
    "rt_ms": st.one_of(st.floats(max_value=-0.001), st.floats(min_value=86_400_001), free_text, st.none(),
                       st.just(float("nan"))),
    "shown_at": st.one_of(free_text, st.just("2026-11-22T02:00:00"), st.integers(), st.none()),
    "answered_at": st.one_of(free_text, st.just("2026-13-40T99:00:00Z"), st.none()),
    "screen_width": st.one_of(st.integers(min_value=100_001), st.integers(max_value=-1), free_text, st.booleans()),
    "device_pixel_ratio": st.one_of(st.floats(min_value=100.001), st.floats(max_value=-0.001), free_text),
}
PAGES = ["", "/consent", "/instructions", "/task", "/debrief", "/done", "/withdraw"]


def snapshot(app) -> str:
    """A checksum of every row of every table but the request counters."""
    from advlegit.study_app.db import db

    h = hashlib.sha256()
    with app.app_context():
        for table in db.metadata.sorted_tables:
            if table.name == "rate_counters":
                continue
            rows = db.session.execute(select(table).order_by(*table.primary_key.columns)).all()
            h.update(f"{table.name}:{len(rows)}:{rows!r}".encode())
        db.session.rollback()
    return h.hexdigest()


@pytest.fixture()
def world(app, client, study_id):
    """A (in the task, 3 answers stored), B (just arrived), C (finished), an admin logged in."""
    from click.testing import CliRunner

    from advlegit.study_app.cli import cli
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response

    a = start_participant(client, study_id, "HOSTILE_A")
    for i in range(3):
        assert post_answer(client, a, answer_body(i, "4")).status_code == 201
    r = client.get(f"/s/{study_id}?PROLIFIC_PID=HOSTILE_B")
    b = re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)
    c = start_participant(client, study_id, "HOSTILE_C")
    for t in client.get(f"/api/p/{c}/trials").get_json()["trials"]:
        assert post_answer(client, c, answer_body(t["index"], "1")).status_code == 201
    assert client.post(f"/p/{c}/debrief", data=form(c)).status_code == 303
    res = CliRunner().invoke(cli, ["create-admin", "--username", "alice"],
                             env={"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
                                  "ADVLEGIT_INSTANCE": app.instance_path, "ADVLEGIT_ADMIN_PASSWORD": PASSWORD})
    assert res.exit_code == 0
    admin = app.test_client()
    assert admin.post("/admin/login", data={"username": "alice", "password": PASSWORD,
                                            "csrf": page_csrf(admin, "/admin/login")}).status_code == 303
    with admin.session_transaction() as s:
        admin_csrf = s["csrf"]
    with app.app_context():
        ids = dict(db.session.execute(select(Participant.platform_pid, Participant.id)).all())
        stored = {(row.uuid, row.trial_index, row.response, row.participant_id)
                  for row in db.session.scalars(select(Response))}
    return {"a": a, "b": b, "c": c, "ids": ids, "stored": sorted(stored), "study": study_id,
            "admin": admin, "admin_csrf": admin_csrf}


def hostile_requests(w):
    """Strategies for (client name, method, path, request kwargs, allowed duplicate replay)."""
    tokens = {"A": w["a"], "B": w["b"], "C": w["c"]}
    unknown = st.one_of(st.sampled_from(list(w["ids"].values()) + [w["study"], w["a"][:-1]]), free_text)
    a_body = st.fixed_dictionaries({}).flatmap(lambda _: st.sampled_from(sorted(INVALID_FIELDS)).flatmap(
        lambda f: INVALID_FIELDS[f].map(lambda v, f=f: {**answer_body(3, "5"), f: v})))
    stored_a = [s for s in w["stored"] if s[3] == w["ids"]["hostile_a"]]
    stored_c = [s for s in w["stored"] if s[3] == w["ids"]["hostile_c"]]

    def answer(uuid, index, response):
        return {**answer_body(index, response), "uuid": uuid}

    replays = st.one_of(
        st.sampled_from(stored_a).map(lambda s: (answer(s[0], s[1], s[2]), True)),         # exact replay
        st.sampled_from(stored_a).map(lambda s: (answer(s[0], s[1], "9"), False)),         # tampered
        st.sampled_from(stored_c).map(lambda s: (answer(s[0], 3, s[2]), False)),           # C's uuid under A
        st.integers(0, 2).map(lambda i: (answer_body(i, "3"), False)),                     # answered trial
        st.integers(4, 30).map(lambda i: (answer_body(i, "3"), False)),                    # skips ahead
    )
    hdr_a = {"X-CSRF-Token": csrf_of(w["a"])}
    api_a = st.one_of(
        a_body.map(lambda b: ("post", "/api/p/{A}/responses", {"json": b}, False)),
        junk.map(lambda b: ("post", "/api/p/{A}/responses", {"json": b}, False)),
        st.binary(max_size=200).map(lambda b: ("post", "/api/p/{A}/responses",
                                               {"data": b, "content_type": "application/json"}, False)),
        free_text.map(lambda t: ("post", "/api/p/{A}/responses", {"data": t, "content_type": "text/plain"}, False)),
        st.integers(66_000, 300_000).map(lambda n: ("post", "/api/p/{A}/responses",
                                                    {"json": {**answer_body(3, "3"), "pad": "x" * n}}, False)),
        replays.map(lambda r: ("post", "/api/p/{A}/responses", {"json": r[0]}, r[1])),
        st.sampled_from(stored_a).map(lambda s: ("post", "/api/p/{C}/responses", {"json": answer(s[0], s[1], s[2])},
                                                 False)),
    ).map(lambda r: (r[0], r[1], {**r[2], "headers": hdr_a if "{A}" in r[1] else {"X-CSRF-Token": csrf_of(w["c"])}},
                     r[3]))
    # Right token, wrong or missing CSRF token: forged cross-site posts, anything in the body.
    forged = st.tuples(st.sampled_from(sorted(tokens)), st.sampled_from(PAGES[1:] + ["api"]),
                       st.one_of(st.none(), free_text, st.sampled_from(sorted(tokens))),
                       st.dictionaries(free_text, free_text, max_size=4))
    # Unknown or someone else's identifiers in place of the secret link (CSRF matching the string).
    unknown_reqs = st.tuples(unknown, st.sampled_from(PAGES + ["api-state", "api-trials", "api-responses", "img"]),
                             st.sampled_from(["get", "post"]))
    bad_consent = st.one_of(free_text, st.integers()).filter(lambda v: v not in ("agree", "decline"))
    # A malformed platform id (Prolific), or an MTurk link that is not one: refused before anything is made.
    bad_pid = free_text.filter(lambda v: not _ID.match(v))
    bad_entry = st.one_of(
        st.tuples(bad_pid, st.dictionaries(st.sampled_from(["STUDY_ID", "SESSION_ID"]), free_text, max_size=2))
          .map(lambda t: {"PROLIFIC_PID": t[0], **t[1]}),
        st.tuples(free_text.filter(lambda v: v != "ASSIGNMENT_ID_NOT_AVAILABLE"), free_text, free_text)
          .map(lambda t: {"assignmentId": t[0] or "x", "workerId": t[1], "turkSubmitTo": t[2]}),
    )

    def forged_req(t):
        who, page, csrf, data = t
        tok = tokens[who]
        sent = None if csrf is None else (csrf_of(tokens[csrf]) if csrf in tokens and csrf != who else csrf)
        if sent is not None and sent == csrf_of(tok):
            sent = sent[:-1]
        if page == "api":
            headers = {} if sent is None else {"X-CSRF-Token": sent}
            return ("post", f"/api/p/{{{who}}}/responses", {"json": answer_body(3, "3"), "headers": headers}, False)
        return ("post", f"/p/{{{who}}}{page}", {"data": data | ({} if sent is None else {"csrf": sent})}, False)

    def unknown_req(t):
        tok, page, method = t
        q = quote(tok, safe="")
        hdr = {"X-CSRF-Token": csrf_of(tok)}
        if page == "img":
            return ("get", f"/img/{q}", {}, False)
        if page.startswith("api-"):
            kind = page[4:]
            if kind == "responses":
                return ("post", f"/api/p/{q}/responses", {"json": answer_body(0, "3"), "headers": hdr}, False)
            return ("get", f"/api/p/{q}/{kind}", {}, False)
        if method == "post" and page not in ("", "/task", "/done"):
            return ("post", f"/p/{q}{page}", {"data": {"choice": "agree", "csrf": csrf_of(tok)}}, False)
        return ("get", f"/p/{q}{page}", {}, False)

    participant = st.one_of(
        api_a,
        forged.map(forged_req),
        unknown_reqs.map(unknown_req),
        bad_consent.map(lambda v: ("post", "/p/{B}/consent", {"data": form(w["b"], choice=v)}, False)),
        bad_entry.map(lambda d: ("get", f"/s/{w['study']}", {"query_string": d}, False)),
        unknown.filter(lambda s: s != w["study"]).map(
            lambda s: ("get", f"/s/{quote(s, safe='')}", {"query_string": {"PROLIFIC_PID": "X1"}}, False)),
    )
    ids = st.one_of(st.sampled_from(list(w["ids"].values())), free_text)
    csrf = {"csrf": w["admin_csrf"]}
    admin = st.one_of(
        st.tuples(ids, free_text.filter(lambda v: v not in ("approved", "rejected", "excluded"))).map(
            lambda t: ("admin", "post", f"/admin/participants/{quote(t[0], safe='')}/review",
                       {"data": {"review": t[1], **csrf}}, False)),
        st.tuples(st.one_of(st.just(w["study"]), free_text), free_text.filter(lambda v: v not in ("open", "closed")))
          .map(lambda t: ("admin", "post", f"/admin/studies/{quote(t[0], safe='')}/status",
                          {"data": {"status": t[1], **csrf}}, False)),
        st.tuples(free_text, st.sampled_from(["", "/export.csv", "/export.xlsx", "/debrief.csv", "/export.jsonl"]))
          .filter(lambda t: t[0] != w["study"])
          .map(lambda t: ("admin", "get", f"/admin/studies/{quote(t[0], safe='')}{t[1]}", {}, False)),
        st.sampled_from(["xlsx", "csv.bak", "%00csv", "..%2Fcsv"]).map(
            lambda f: ("admin", "get", f"/admin/studies/{w['study']}/export.{f}", {}, False)),
        # Admin forms with no, stale or someone else's form token; the login form with injections.
        st.tuples(st.sampled_from([f"/admin/studies/{w['study']}/status", "/admin/logout",
                                   f"/admin/participants/{w['ids']['hostile_a']}/review"]),
                  st.one_of(st.none(), free_text, st.just(csrf_of(w["a"]))),
                  st.sampled_from(["admin", "anon"]))
          .map(lambda t: (t[2], "post", t[0], {"data": {"status": "closed", "review": "excluded",
                                                        **({} if t[1] is None else {"csrf": t[1]})}}, False)),
        st.tuples(free_text, free_text).map(
            lambda t: ("anon-login", "post", "/admin/login", {"data": {"username": t[0], "password": t[1]}}, False)),
        st.tuples(free_text, free_text, st.sampled_from(["admin", "anon"])).map(
            lambda t: (t[2], "post", f"/admin/studies/{w['study']}/status",
                       {"json": {"status": t[0], "x": t[1]}}, False)),
    )
    return st.one_of(participant.map(lambda r: ("participant", *r)), admin)


def _clients(app, client, w):
    anon = app.test_client()
    return {"participant": client, "admin": w["admin"], "anon": anon, "anon-login": anon}


def test_hostile_requests_get_4xx_and_change_nothing(app, client, world):
    clients = _clients(app, client, world)
    tokens = {"{A}": world["a"], "{B}": world["b"], "{C}": world["c"]}
    before = snapshot(app)
    seen = {"4xx": 0, "replay": 0}

    @given(req=hostile_requests(world))
    @settings(max_examples=int(__import__("os").environ.get("ADVLEGIT_HOSTILE_EXAMPLES", 100)), deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    def check(req):
        who, method, path, kwargs, replay_ok = req
        for k, v in tokens.items():
            path = path.replace(k, v)
        c = clients[who]
        if who == "anon-login":
            kwargs = {**kwargs, "data": {**kwargs["data"], "csrf": page_csrf(c, "/admin/login")}}
        r = getattr(c, method)(path, **kwargs)
        body = r.get_data()
        assert r.status_code < 500, (path, r.status_code, body[:300])
        assert not LEAK.search(body.decode("latin-1") + str(dict(r.headers))), path
        if replay_ok and r.status_code == 200:
            assert r.get_json()["duplicate"] is True
            seen["replay"] += 1
        else:
            assert 400 <= r.status_code < 500, (method, path, kwargs.keys(), r.status_code, body[:300])
            seen["4xx"] += 1
            if path.startswith("/api/") or "json" in kwargs:
                err = r.get_json()
                assert isinstance(err, dict) and err["error"] and err["message"], body[:300]
            else:
                assert r.mimetype == "text/html"
        assert snapshot(app) == before, (method, path, r.status_code)

    check()
    assert seen["4xx"] > 0
