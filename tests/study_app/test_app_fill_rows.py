"""The maintained fill rows (study_app/fills.py) equal the reference rescan (allocation.fill_counts) at
every Start, after random sequences of what participants and researchers do: start, answer, finish,
go quiet, time out, come back, withdraw, be excluded, rejected, and have it undone. Real HTTP (the
Flask client) for the participant side; the review marks as the admin page sets them."""
from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select
from study_fixtures import answer_body, create_study, form, post_answer, start_participant, valid_answers

MARKS = ("", "approved", "rejected", "excluded")


def _rows(study_id):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import FillCount

    rows = db.session.execute(select(FillCount.item_key, FillCount.n).where(FillCount.study_id == study_id)).all()
    assert all(n >= 0 for _, n in rows), rows
    return {k: n for k, n in rows if n}


def _at_start(app, study_id):
    """What a Start sees: time-outs first (as participant/views.py does), then the rows vs the rescan."""
    from advlegit.study_app.allocation import fill_counts, time_out_stale
    from advlegit.study_app.db import db
    from advlegit.study_app.design import Design
    from advlegit.study_app.models import Study

    with app.app_context():
        study = db.session.get(Study, study_id)
        design = Design.from_dict(study.design)
        time_out_stale(study, design)
        db.session.commit()
        assert _rows(study_id) == fill_counts(study, design)


def _participant(app, token):
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    return db.session.scalar(select(Participant).where(Participant.access_token == token).with_for_update())


def _run(app, client, study_id, task, seed, steps):
    from advlegit.study_app import review
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant

    rng = random.Random(seed)
    tokens: list[str] = []
    answer = valid_answers(task)[0]
    done = set()
    for step in range(steps):
        event = rng.choice(("start", "start", "answer", "finish", "quiet", "resume", "withdraw", "mark", "mark"))
        if event == "start" or not tokens:
            if len(tokens) < 7:
                tokens.append(start_participant(client, study_id, f"P{seed}x{step}"))
            continue
        token = rng.choice(tokens)
        if event in ("answer", "finish"):
            with app.app_context():
                p = _participant(app, token)
                state, nxt, n = p.state, p.next_trial_index, p.n_trials
                db.session.commit()
            if state in ("in_task", "timed_out"):
                for idx in range(nxt, n if event == "finish" else min(n, nxt + 1)):
                    r = post_answer(client, token, answer_body(idx, answer))
                    assert r.status_code in (200, 201), (r.get_json(), state)
            if event == "finish" and state in ("in_task", "timed_out", "data_complete") and rng.random() < 0.5:
                client.post(f"/p/{token}/debrief", data=form(token, q0="ok"))
        elif event == "quiet":  # unseen for longer than the time-out: the rescan stops counting them now
            with app.app_context():
                p = _participant(app, token)
                p.last_seen_at = utcnow() - timedelta(hours=3)
                db.session.commit()
        elif event == "resume":
            client.get(f"/p/{token}")
        elif event == "withdraw":
            client.post(f"/p/{token}/withdraw", data=form(token))
        elif event == "mark":
            with app.app_context():
                p = _participant(app, token)
                try:
                    review.set_mark(p, rng.choice(MARKS), "researcher")
                except review.ReviewError:
                    db.session.rollback()
                else:
                    db.session.commit()
        done.add(event)
        if rng.random() < 0.6:  # sometimes several events happen between two Starts
            _at_start(app, study_id)
    _at_start(app, study_id)
    with app.app_context():
        states = {p.state for p in db.session.scalars(select(Participant))}
    return done, states


@pytest.mark.parametrize("task, seed, steps", [("identify", 1, 70), ("compare", 2, 55)])
def test_fill_rows_equal_the_rescan_after_random_events(app, client, stimulus_dir, tmp_path, task, seed, steps):
    study_id = create_study(app, stimulus_dir, tmp_path, task, trials=4 if task == "identify" else 6,
                            practice=1, checks=1)
    done, states = _run(app, client, study_id, task, seed, steps)
    # The sequence went through the events and states that change who counts.
    assert {"answer", "finish", "quiet", "resume", "withdraw", "mark"} <= done
    assert {"in_task", "returned"} <= states and states & {"data_complete", "code_issued"}


def test_erasure_takes_the_participant_out_of_the_counts(app, client, stimulus_dir, tmp_path):
    from advlegit.study_app.allocation import fill_counts
    from advlegit.study_app.db import db
    from advlegit.study_app.design import Design
    from advlegit.study_app.fills import uncount_participant
    from advlegit.study_app.models import AllocationLog, Study, Transition, Trial

    study_id = create_study(app, stimulus_dir, tmp_path, "identify", trials=4, practice=1, checks=1)
    keep, gone = start_participant(client, study_id, "KEEP"), start_participant(client, study_id, "GONE")
    with app.app_context():
        p = _participant(app, gone)
        uncount_participant(p)
        for model in (Trial, Transition, AllocationLog):  # what an erasure deletes, as far as counts go
            db.session.execute(model.__table__.delete().where(model.participant_id == p.id))
        db.session.delete(p)
        db.session.commit()
        study = db.session.get(Study, study_id)
        assert _rows(study_id) == fill_counts(study, Design.from_dict(study.design))
        assert sum(_rows(study_id).values()) == 4
    assert keep


def test_resume_after_an_undone_exclusion_continues_the_task(app, client, stimulus_dir, tmp_path):
    """Timed out, excluded, exclusion undone (back to timed_out), then the person comes back: they resume
    in task, where they were, and count again (it used to resume them into `excluded`)."""
    from advlegit.study_app import review
    from advlegit.study_app.allocation import fill_counts, time_out_stale
    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.design import Design
    from advlegit.study_app.models import Study

    study_id = create_study(app, stimulus_dir, tmp_path, "identify", trials=4, practice=1, checks=1)
    token = start_participant(client, study_id, "BACK")
    with app.app_context():
        p = _participant(app, token)
        p.last_seen_at = utcnow() - timedelta(hours=3)
        db.session.commit()
        study = db.session.get(Study, study_id)
        time_out_stale(study, Design.from_dict(study.design))
        db.session.commit()
        for mark in ("excluded", ""):
            review.set_mark(_participant(app, token), mark, "researcher")
            db.session.commit()
        assert _participant(app, token).state == "timed_out" and _rows(study_id) == {}
        db.session.commit()
    assert client.get(f"/p/{token}").status_code == 303
    with app.app_context():
        assert _participant(app, token).state == "in_task"
        study = db.session.get(Study, study_id)
        assert _rows(study_id) == fill_counts(study, Design.from_dict(study.design)) != {}


def test_a_new_study_leaves_fresh_planner_statistics_for_its_fill_rows(app, db_url, stimulus_dir, tmp_path):
    """PostgreSQL: seeding a study's fill rows analyzes the table, so its first Starts are planned on
    the rows that are there, not on the statistics of an empty table (3x slower Starts until
    autovacuum analyzes it)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("planner statistics are a PostgreSQL notion")
    from sqlalchemy import text

    from advlegit.study_app.db import db

    def estimated_rows():
        return db.session.scalar(text("SELECT reltuples FROM pg_class WHERE oid = 'fill_counts'::regclass"))

    with app.app_context():
        db.session.execute(text("ANALYZE fill_counts"))  # the table is empty now: statistics of an empty table
        db.session.commit()
        assert estimated_rows() == 0
    study_id = create_study(app, stimulus_dir, tmp_path, "identify")
    with app.app_context():
        n = db.session.scalar(text("SELECT count(*) FROM fill_counts WHERE study_id = :s"), {"s": study_id})
        assert n > 0 and estimated_rows() == n
