"""The answer store's two backends side by side: one script of answers, the same replies and rows.

The portable backend (SQLAlchemy Core, SQLite's) and PostgreSQL's CTE backend each run the script on
their own engine; the portable one also runs on PostgreSQL, so a difference can be told apart from a
difference between the databases. Every step's reply is also checked against what it must be.
"""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import event, select, update
from study_fixtures import (
    answer_body,
    create_study,
    csrf_of,
    form,
    fresh_postgres_database,
    make_app,
    post_answer,
    start_participant,
)

N_TRIALS = 4  # main trials only: the fourth answer completes a participant


def uid(n: int) -> str:
    """Fixed answer UUIDs, so the rows of two runs can be compared."""
    return str(uuid.UUID(int=n))


def script(app, client, study_id) -> list[tuple[str, int, dict]]:
    """Answers a participant can send: valid, retried, out of order, someone else's, after the end,
    malformed. Returns (step, status, reply) for each; asserts the status and error code each must get."""
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant

    alice, bob, done = (start_participant(client, study_id, pid) for pid in ("ALICE", "BOB", "DONE"))
    steps = [
        ("first answer", alice, answer_body(0, "4", uid(1)), 201, None),
        ("retry, same uuid", alice, answer_body(0, "4", uid(1)), 200, None),
        ("same trial, new uuid", alice, answer_body(0, "4", uid(2)), 409, "already_answered"),
        ("same uuid, other answer", alice, answer_body(0, "5", uid(1)), 409, "uuid_conflict"),
        ("skips ahead", alice, answer_body(2, "1", uid(3)), 409, "out_of_order"),
        ("second answer", alice, answer_body(1, "6", uid(4)), 201, None),
        ("someone else's uuid", bob, answer_body(0, "6", uid(4)), 409, "uuid_conflict"),
        ("unknown link", "x" * 43, answer_body(0, "1", uid(5)), 404, "unknown_participant"),
        ("no such trial", bob, answer_body(999, "1", uid(6)), 404, "no_such_trial"),
        ("not an answer", bob, answer_body(0, "left", uid(7)), 400, "invalid_response"),
        ("bad uuid", bob, answer_body(0, "1", "not-a-uuid"), 400, "invalid_field"),
        ("naive time", bob, {**answer_body(0, "1", uid(8)), "shown_at": "2026-11-22T02:00"}, 400, "invalid_field"),
        ("a list", bob, [], 400, "invalid_json"),
        ("not json", bob, "{oops", 400, "invalid_json"),
        ("wrong csrf", bob, answer_body(0, "1", uid(9)), 403, "forbidden"),
        *[(f"completes {i}", done, answer_body(i, "3", uid(10 + i)), 201, None) for i in range(N_TRIALS)],
        ("after the end", done, answer_body(0, "3", uid(20)), 409, "not_in_task"),
        ("last answer retried", done, answer_body(N_TRIALS - 1, "3", uid(10 + N_TRIALS - 1)), 200, None),
        ("bob answers", bob, answer_body(0, "7", uid(21)), 201, None),
    ]
    out = []

    def send(name, token, body, status, code):
        if name == "not json":
            r = client.post(f"/api/p/{token}/responses", data=body, content_type="application/json",
                            headers={"X-CSRF-Token": csrf_of(token)})
        elif name == "wrong csrf":
            r = client.post(f"/api/p/{token}/responses", json=body, headers={"X-CSRF-Token": csrf_of(alice)})
        else:
            r = post_answer(client, token, body)
        reply = r.get_json()
        assert r.status_code == status and reply.get("error") == code, (name, r.status_code, reply)
        out.append((name, r.status_code, reply))

    for step in steps:
        send(*step)
    # Alice goes quiet and is timed out by the next arrival; her next answer resumes her, then she leaves.
    with app.app_context():
        db.session.execute(update(Participant).where(Participant.platform_pid == "alice")
                           .values(last_seen_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
    start_participant(client, study_id, "LATE")
    send("resumes after a timeout", alice, answer_body(2, "8", uid(22)), 201, None)
    assert client.post(f"/p/{alice}/withdraw", data=form(alice)).status_code == 200
    send("after leaving", alice, answer_body(3, "8", uid(23)), 409, "not_in_task")
    send("retry after leaving", alice, answer_body(2, "8", uid(22)), 200, None)
    return out


def stored(app) -> dict:
    """Everything an answer writes, without ids, tokens or clocks of the run."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response, Transition, Trial
    from advlegit.study_app.responses import ANSWER_FIELDS

    with app.app_context():
        answer_columns = [getattr(Response, f) for f in ANSWER_FIELDS]
        rows = db.session.execute(
            select(Participant.platform_pid, Trial.index.label("row_of_trial"), *answer_columns)
            .join(Participant, Participant.id == Response.participant_id)
            .join(Trial, (Trial.id == Response.trial_id) & (Trial.participant_id == Participant.id))
            .order_by(Response.uuid)).all()
        for row in rows:  # each answer is on its own participant's trial of that index
            assert row.row_of_trial == row.trial_index, row
        people = db.session.execute(select(Participant.platform_pid, Participant.state, Participant.next_trial_index)
                                    .order_by(Participant.platform_pid)).all()
        moves = db.session.execute(select(Participant.platform_pid, Transition.from_state, Transition.to_state)
                                   .join(Participant, Participant.id == Transition.participant_id)
                                   .order_by(Participant.platform_pid, Transition.id)).all()
        received = db.session.scalars(select(Response.received_at)).all()
        assert all(t is not None and t.tzinfo is not None for t in received)
        return {"responses": [tuple(r) for r in rows], "participants": [tuple(p) for p in people],
                "transitions": [tuple(m) for m in moves]}


def run(url, backend, monkeypatch, stimulus_dir, tmp_path) -> tuple[list, dict]:
    from advlegit.study_app import answers
    from advlegit.study_app.db import db

    app = make_app(url, tmp_path / "instance")
    try:
        with app.app_context():
            db.create_all()
            monkeypatch.setitem(answers.BACKENDS, db.engine.dialect.name, backend)
            assert answers.backend_for(db.engine) is backend
        study_id = create_study(app, stimulus_dir, tmp_path, "identify", trials=N_TRIALS, practice=0, checks=0)
        replies = script(app, app.test_client(), study_id)
        return replies, stored(app)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        for engine in app.extensions.get("advlegit_counters", {}).values():
            engine.dispose()


def test_both_backends_give_the_same_replies_and_rows(postgres_url, stimulus_dir, tmp_path, monkeypatch):
    from advlegit.study_app.answers.portable import PortableStore
    from advlegit.study_app.answers.postgres import PostgresStore

    results = {}
    results["portable on SQLite"] = run(f"sqlite:///{tmp_path / 'answers.db'}", PortableStore, monkeypatch,
                                        stimulus_dir, tmp_path / "sqlite")
    for backend in (PostgresStore, PortableStore):
        with fresh_postgres_database(postgres_url) as url, monkeypatch.context() as patch:
            results[f"{backend.__name__} on PostgreSQL"] = run(url, backend, patch, stimulus_dir,
                                                               tmp_path / backend.__name__)
    (first_name, first), *others = results.items()
    replies, rows = first
    assert len(rows["responses"]) == N_TRIALS + 4  # Done's four, Alice's three, Bob's one
    for name, (other_replies, other_rows) in others:
        for mine, theirs in zip(replies, other_replies, strict=True):
            assert mine == theirs, (first_name, name)
        assert other_rows == rows, (first_name, name)


def test_postgres_stores_the_usual_answer_in_two_statements(postgres_url, stimulus_dir, tmp_path):
    """The throughput of bench_load rests on this: rate counters and lookup in one statement, the
    guarded pointer move and insert in another, each its own autocommit transaction."""
    from advlegit.study_app import security
    from advlegit.study_app.db import db

    with fresh_postgres_database(postgres_url) as url:
        app = make_app(url, tmp_path / "instance")
        try:
            with app.app_context():
                db.create_all()
            study_id = create_study(app, stimulus_dir, tmp_path, "identify", trials=N_TRIALS, practice=0, checks=0)
            client = app.test_client()
            token = start_participant(client, study_id)
            assert post_answer(client, token, answer_body(0, "1")).status_code == 201  # caches the study's settings
            statements = []

            def count(conn, cursor, statement, *args):
                if not statement.startswith("DELETE FROM rate_counters"):  # the occasional sweep of old counters
                    statements.append(statement)

            with app.app_context():
                engines = (db.engine, security.counter_engine())
            for engine in engines:
                event.listen(engine, "before_cursor_execute", count)
            r = post_answer(client, token, answer_body(1, "2"))
            assert r.status_code == 201 and r.get_json()["next_index"] == 2
            assert len(statements) == 2, statements
            assert "rate_counters" in statements[0] and statements[1].startswith("WITH moved AS (UPDATE participants")
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            for engine in app.extensions.get("advlegit_counters", {}).values():
                engine.dispose()
