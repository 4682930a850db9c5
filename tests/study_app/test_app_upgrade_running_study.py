"""Upgrading a database that holds a running study (issue 14, item 24), from every earlier revision.

For each revision R before head (found in migrations/, so every future revision is covered without
touching this file), on SQLite and PostgreSQL:

1. a study is run at head through the app (participants in every state: entered, consented,
   instructed, mid-task with answers the browser still holds, timed out mid-task, finished, coded,
   declined, withdrawn, excluded) in a database migrated to head — the reference;
2. a database migrated to R gets the same rows, column for column where R has the column;
3. it is upgraded to head, and every row of every table must equal the reference (columns added after
   R included: the migrations must backfill what the app itself would have written);
4. gunicorn at head serves the upgraded database and every unfinished participant finishes over HTTP:
   the browser's queue (answers stored before the upgrade whose reply was lost, and answers never sent)
   goes out first, stored once each, then the rest, then the debrief and the completion code.

A future revision whose data cannot be written at an older revision from the head rows (a renamed or
dropped NOT NULL column) fails in step 2 with the table and column named: extend `_old_value` then.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, inspect, select, text
from study_fixtures import (
    ServerProcess,
    answer_body,
    create_study,
    csrf_of,
    form,
    fresh_postgres_database,
    make_app,
    page_csrf,
    write_stimulus_set,
)

ROOT = Path(__file__).resolve().parents[2]


def _revisions() -> list[str]:
    """Every revision before head, oldest first."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    script = ScriptDirectory.from_config(cfg)
    chain = [r.revision for r in script.walk_revisions()][::-1]  # base .. head
    return chain[:-1]


def _migrate(url: str, instance: Path, revision: str = "head") -> None:
    from advlegit.study_app.cli import cli

    out = CliRunner().invoke(cli, ["db", "upgrade", "--revision", revision],
                             env={"DATABASE_URL": url, "ADVLEGIT_INSTANCE": str(instance)})
    assert out.exit_code == 0, out.output


@pytest.fixture(scope="module")
def reference(db_url, tmp_path_factory):
    """A head database holding a running study; returns (url, study id, unfinished participants).
    Its stimulus set has no saliency maps: the versions this upgrades from never stored map images
    (the explain task came later), so a running study of theirs has none."""
    tmp = tmp_path_factory.mktemp("reference")
    _migrate(db_url, tmp / "migrate")
    app = make_app(db_url, tmp / "instance")
    stimuli = write_stimulus_set(tmp / "stimuli", saliency=())
    study_id = create_study(app, stimuli, tmp, "identify", trials=4, practice=1, checks=1)
    client = app.test_client()
    unfinished = _run_study(app, client, study_id)
    from advlegit.study_app.db import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return db_url, study_id, unfinished


def _arrive(client, study_id, pid):
    r = client.get(f"/s/{study_id}?PROLIFIC_PID={pid}&STUDY_ID=S&SESSION_ID=X{pid}")
    assert r.status_code == 303, r.data
    return re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)


def _post(client, token, body):
    return client.post(f"/api/p/{token}/responses", json=body, headers={"X-CSRF-Token": csrf_of(token)})


def _run_study(app, client, study_id) -> dict[str, dict]:
    """Participants in every state; returns {token: {"queue": [answer bodies the browser still holds]}}
    for everyone who has not finished."""
    from advlegit.study_app import review
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant
    from advlegit.study_app.states import transition

    unfinished: dict[str, dict] = {}

    def to_task(pid):
        token = _arrive(client, study_id, pid)
        assert client.post(f"/p/{token}/consent", data=form(token, choice="agree")).status_code == 303
        assert client.post(f"/p/{token}/instructions", data=form(token)).status_code == 303
        trials = client.get(f"/api/p/{token}/trials").get_json()["trials"]
        return token, [answer_body(t["index"], "1") for t in trials]

    for pid in ("entered1",):
        unfinished[_arrive(client, study_id, pid)] = {"queue": []}
    token = _arrive(client, study_id, "consented1")
    assert client.post(f"/p/{token}/consent", data=form(token, choice="agree")).status_code == 303
    unfinished[token] = {"queue": []}
    token = _arrive(client, study_id, "instructed1")
    client.post(f"/p/{token}/consent", data=form(token, choice="agree"))
    assert client.get(f"/p/{token}/instructions").status_code == 200
    unfinished[token] = {"queue": []}
    # Mid-task, two answers stored; the browser still holds the second (its reply was lost) and the
    # third (never sent): both go out again after the upgrade.
    token, bodies = to_task("midtask1")
    for b in bodies[:2]:
        assert _post(client, token, b).status_code == 201
    unfinished[token] = {"queue": bodies[1:3]}
    token, bodies = to_task("midtask2")  # allocated, nothing answered yet
    unfinished[token] = {"queue": bodies[:1]}
    token, bodies = to_task("timedout1")
    assert _post(client, token, bodies[0]).status_code == 201
    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.access_token == token))
        transition(p, "timed_out", "no activity")
        db.session.commit()
    unfinished[token] = {"queue": []}
    token, bodies = to_task("complete1")  # every answer stored, debrief not sent
    for b in bodies:
        assert _post(client, token, b).status_code == 201
    unfinished[token] = {"queue": bodies[-1:]}
    token, bodies = to_task("coded1")
    for b in bodies:
        assert _post(client, token, b).status_code == 201
    page = f"/p/{token}/debrief"
    assert client.post(page, data={"q0": "fine", "csrf": page_csrf(client, page)}).status_code == 303
    token = _arrive(client, study_id, "declined1")
    assert client.post(f"/p/{token}/consent", data=form(token, choice="decline")).status_code == 410  # ended
    token, bodies = to_task("withdrew1")
    assert _post(client, token, bodies[0]).status_code == 201
    assert client.post(f"/p/{token}/withdraw", data=form(token)).status_code == 200
    token, bodies = to_task("excluded1")
    with app.app_context():
        p = db.session.scalar(select(Participant).where(Participant.access_token == token))
        review.set_mark(p, "excluded", "researcher", "excluded before the upgrade")  # as the admin page does
        db.session.commit()
    with app.app_context():
        states = set(db.session.scalars(select(Participant.state)))
    from advlegit.study_app.states import ALLOWED

    assert states == set(ALLOWED), f"not every state is represented: {set(ALLOWED) - states}"
    return unfinished


# ------------------------------------------------------------------ table copies and comparison

def _quote(name: str) -> str:
    return '"' + name + '"'


def _tables(conn) -> list[str]:
    """Application tables in an order that satisfies foreign keys (the models' order)."""
    import advlegit.study_app.models  # noqa: F401
    from advlegit.study_app.db import db

    present = set(inspect(conn).get_table_names())
    return [t.name for t in db.metadata.sorted_tables if t.name in present]


def _rows(conn, table: str, columns: list[str]) -> list[tuple]:
    pk = inspect(conn).get_pk_constraint(table)["constrained_columns"]
    cols = ", ".join(_quote(c) for c in columns)
    order = ", ".join(_quote(c) for c in pk)
    rows = conn.execute(text(f"SELECT {cols} FROM {_quote(table)} ORDER BY {order}")).all()
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]


def _old_value(table: str, column: str):
    """A value for a column that exists at the old revision but no longer at head (none so far)."""
    raise AssertionError(f"{table}.{column} exists at an older revision but not at head: give the value an "
                         "old database held for it here")


def _copy(src_url: str, dst_url: str) -> dict[str, int]:
    """Copy every row of the reference into the old-revision database (raw values, untyped binds, so
    timestamps and blobs are stored exactly as the app stored them). Returns rows per table."""
    src, dst = create_engine(src_url), create_engine(dst_url)
    copied = {}
    try:
        with src.connect() as s, dst.begin() as d:
            for table in _tables(d):
                if table == "rate_counters":
                    continue  # request counters, not study data
                old_cols = [c["name"] for c in inspect(d).get_columns(table)]
                head_cols = {c["name"] for c in inspect(s).get_columns(table)}
                shared = [c for c in old_cols if c in head_cols]
                missing = [c for c in old_cols if c not in head_cols]
                rows = _rows(s, table, shared)
                if rows:
                    names = shared + missing
                    stmt = text(f"INSERT INTO {_quote(table)} ({', '.join(_quote(c) for c in names)}) VALUES "
                                f"({', '.join(':c' + str(i) for i in range(len(names)))})")
                    extra = [_old_value(table, c) for c in missing]
                    d.execute(stmt, [{f"c{i}": v for i, v in enumerate(list(r) + extra)} for r in rows])
                copied[table] = len(rows)
                if d.dialect.name == "postgresql":  # explicit ids: move the sequence past them
                    for pk in inspect(d).get_pk_constraint(table)["constrained_columns"]:
                        seq = d.execute(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": pk}).scalar()
                        if seq:
                            d.execute(text(f"SELECT setval(:s, (SELECT COALESCE(max({_quote(pk)}), 0) + 1 "
                                           f"FROM {_quote(table)}), false)"), {"s": seq})
    finally:
        src.dispose()
        dst.dispose()
    return copied


# History rows a revision creates for data that predates it cannot know what only the app at that revision
# records (who made the change, the reason typed, the moment): those columns are not compared.
BACKFILL_CANNOT_KNOW = {"review_events": ("by", "note", "at")}


def _assert_same(reference_url: str, upgraded_url: str) -> None:
    ref, up = create_engine(reference_url), create_engine(upgraded_url)
    try:
        with ref.connect() as r, up.connect() as u:
            tables = [t for t in _tables(r) if t != "rate_counters"]
            assert tables == [t for t in _tables(u) if t != "rate_counters"]
            for table in tables:
                cols = [c["name"] for c in inspect(r).get_columns(table)]
                assert cols == [c["name"] for c in inspect(u).get_columns(table)], table
                cols = [c for c in cols if c not in BACKFILL_CANNOT_KNOW.get(table, ())]
                want, got = _rows(r, table, cols), _rows(u, table, cols)
                assert len(got) == len(want), f"{table}: {len(got)} rows after the upgrade, {len(want)} before"
                for w, g in zip(want, got, strict=True):
                    diff = {c: (a, b) for c, a, b in zip(cols, w, g, strict=True) if a != b}
                    assert not diff, f"{table} row {w[0]!r} changed in the upgrade: {diff}"
    finally:
        ref.dispose()
        up.dispose()


@pytest.fixture()
def old_db(db_url, request, tmp_path):
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


# ------------------------------------------------------------------ finishing over HTTP

def _finish_over_http(base: str, token: str, queue: list[dict]) -> str:
    """Drive one participant from wherever they are to the completion code, as a browser would."""
    import requests

    s = requests.Session()
    csrf = csrf_of(token)
    for b in queue:  # the browser's queue first, in order, with the UUIDs it was made with
        r = s.post(f"{base}/api/p/{token}/responses", json=b, headers={"X-CSRF-Token": csrf}, timeout=30)
        assert r.status_code in (200, 201), r.text
    for _ in range(8):
        r = s.get(f"{base}/p/{token}", timeout=30)
        assert r.status_code == 200, (r.url, r.status_code, r.text[:300])
        page = r.url.rsplit("/", 1)[-1]
        if page == "done":
            return re.search(r'id="completion-code">([A-Z0-9]+)<', r.text).group(1)
        if page == "consent":
            r = s.post(f"{base}/p/{token}/consent", data={"choice": "agree", "csrf": csrf}, timeout=30)
        elif page == "instructions":
            r = s.post(f"{base}/p/{token}/instructions", data={"csrf": csrf}, timeout=30)
        elif page == "task":
            trials = s.get(f"{base}/api/p/{token}/trials", timeout=30).json()
            for t in trials["trials"][trials["next_index"]:]:
                body = answer_body(t["index"], "1", str(uuid.uuid4()))
                a = s.post(f"{base}/api/p/{token}/responses", json=body, headers={"X-CSRF-Token": csrf}, timeout=30)
                assert a.status_code == 201, a.text
            continue
        elif page == "debrief":
            r = s.post(f"{base}/p/{token}/debrief", data={"q0": "after the upgrade", "csrf": csrf}, timeout=30)
        else:
            raise AssertionError(f"unexpected page {r.url}")
        assert r.status_code == 200, (r.url, r.status_code, r.text[:300])
    raise AssertionError(f"{token[:6]}… did not reach the done page")


@pytest.mark.parametrize("revision", _revisions())
def test_a_running_study_survives_the_upgrade_from(revision, reference, old_db, tmp_path):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response, Trial

    reference_url, study_id, unfinished = reference
    _migrate(old_db, tmp_path / "migrate", revision)
    copied = _copy(reference_url, old_db)
    assert copied["participants"] >= 10 and copied["responses"] > 0
    _migrate(old_db, tmp_path / "migrate")
    _assert_same(reference_url, old_db)

    with ServerProcess(old_db, tmp_path / "server", workers=1) as srv:
        codes = {token: _finish_over_http(srv.url, token, info["queue"]) for token, info in unfinished.items()}
        assert "Traceback" not in srv.log(), srv.log()[-3000:]
    assert all(codes.values())
    app = make_app(old_db, tmp_path / "instance")
    with app.app_context():
        try:
            for token in unfinished:
                p = db.session.scalar(select(Participant).where(Participant.access_token == token))
                assert p.state == "code_issued", (p.platform_pid, p.state)
                indexes = sorted(
                    db.session.scalars(select(Response.trial_index).where(Response.participant_id == p.id))
                )
                assert indexes == list(range(p.n_trials)), p.platform_pid  # each answer once, every pointer moved
                n_trials = len(db.session.scalars(select(Trial.id).where(Trial.participant_id == p.id)).all())
                assert n_trials == p.n_trials and p.next_trial_index == p.n_trials
        finally:
            db.session.remove()
            db.engine.dispose()
