"""Races over real HTTP against gunicorn (issue 14, items 2, 3, 10, 11) and stale sessions timed out in
bulk before the allocation lock (item 12), on SQLite and PostgreSQL.

Every race test fires at least 200 concurrent requests from a bounded thread pool and then checks that
no request failed with a 5xx, that what each request told its client matches what was stored, and that
no state was written twice.
"""
from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from sqlalchemy import event, func, select, text, update
from study_fixtures import ServerProcess, answer_body, bot_token, create_study, csrf_of, write_design

POOL = 16  # client threads: more than the server's 2 workers x 4 threads, so requests really overlap
_local = threading.local()


def http() -> requests.Session:
    if not hasattr(_local, "s"):
        _local.s = requests.Session()
    return _local.s


def parallel(calls):
    """Run zero-argument callables on the pool, submitted in order (so a group's requests overlap)."""
    with ThreadPoolExecutor(max_workers=POOL) as pool:
        return [f.result() for f in [pool.submit(c) for c in calls]]


def small_study(app, stimulus_dir, tmp_path):
    # Four main trials (one per defense), nothing else.
    return create_study(app, stimulus_dir, tmp_path, "identify", trials=4, practice=0, checks=0)


def one_trial_study(app, stimulus_dir, tmp_path):
    """One defense, one trial: the cheapest participant that still goes through every state (its first
    answer is its last), so the race tests spend their time on the race, not on getting there."""
    from advlegit.study_app.db import db
    from advlegit.study_app.design import load_design
    from advlegit.study_app.manifest import load_stimulus_set
    from advlegit.study_app.studies import create_study as create

    path = write_design(tmp_path / "one-trial.toml", "identify", trials=1, practice=0, checks=0)
    path.write_text(path.read_text().replace("[study]\n", '[study]\ndefenses = ["undefended_ce"]\n', 1))
    with app.app_context():
        study = create(load_stimulus_set(stimulus_dir), load_design(path))
        db.session.commit()
        return study.id


def arrive(base, study_id, pid=None) -> str:
    params = {"PROLIFIC_PID": pid, "STUDY_ID": "S", "SESSION_ID": f"X{pid}"} if pid else {}
    r = http().get(f"{base}/s/{study_id}", params=params, allow_redirects=False)
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1)


def post(base, path, token, **data):
    return http().post(f"{base}/p/{token}/{path}", data={**data, "csrf": csrf_of(token)}, allow_redirects=False)


def answer(base, token, index):
    return http().post(f"{base}/api/p/{token}/responses", json=answer_body(index, "3"),
                       headers={"X-CSRF-Token": csrf_of(token)})


def consented(base, study_id, n, anonymous=False):
    def one(i):
        token = arrive(base, study_id, None if anonymous else f"RACE{i}")
        assert post(base, "consent", token, choice="agree").status_code == 303
        return token

    return parallel([lambda i=i: one(i) for i in range(n)])


def in_task(base, study_id, n, answered, anonymous=False):
    def one(token):
        assert post(base, "instructions", token).headers["Location"].endswith("/task")
        for i in range(answered):
            assert answer(base, token, i).status_code == 201
        return token

    return parallel([lambda t=t: one(t) for t in consented(base, study_id, n, anonymous)])


def stored(app, tokens):
    """{token: (state, completion_code, responses, [(from, to), ...])} as the database holds them."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Response, Transition

    with app.app_context():
        out = {}
        for p in db.session.scalars(select(Participant).where(Participant.access_token.in_(tokens))):
            n = db.session.scalar(select(func.count()).select_from(Response).where(Response.participant_id == p.id))
            moves = db.session.execute(select(Transition.from_state, Transition.to_state)
                                       .where(Transition.participant_id == p.id).order_by(Transition.id)).all()
            out[p.access_token] = (p.state, p.completion_code, n, [tuple(m) for m in moves])
        return out


def no_server_errors(responses, server):
    errors = [(r.status_code, r.url) for r in responses if r.status_code >= 500]
    assert not errors, (errors[:5], server.log()[-3000:])


def test_double_submitted_start_allocates_once(app, server_process, stimulus_dir, tmp_path):
    """Item 2: three Start submits at once for each of 70 participants: every one is sent to the task,
    one allocation and one trial list each."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import AllocationLog, Trial

    base = server_process.url
    study_id = one_trial_study(app, stimulus_dir, tmp_path)
    tokens = consented(base, study_id, 70)
    replies = parallel([lambda t=t: post(base, "instructions", t) for t in tokens for _ in range(3)])
    no_server_errors(replies, server_process)
    assert all(r.status_code == 303 and r.headers["Location"].endswith("/task") for r in replies)
    db_state = stored(app, tokens)
    with app.app_context():
        logs = dict(db.session.execute(select(AllocationLog.participant_id, func.count())
                                       .group_by(AllocationLog.participant_id)).all())
        trials = dict(
            db.session.execute(select(Trial.participant_id, func.count()).group_by(Trial.participant_id)).all()
        )
    assert len(logs) == 70 and set(logs.values()) == {1} and set(trials.values()) == {1}
    for state, _code, _n, moves in db_state.values():
        assert state == "in_task"
        assert moves == [(None, "entered"), ("entered", "consented"), ("consented", "instructed"),
                         ("instructed", "in_task")]


def test_withdraw_racing_the_last_answer_never_contradicts_what_was_stored(app, server_process, stimulus_dir,
                                                                           tmp_path):
    """Item 3: withdraw and the last answer at once (100 participants, 200 requests): whichever wins,
    the other is told so, and the loser changes nothing."""
    base = server_process.url
    study_id = one_trial_study(app, stimulus_dir, tmp_path)
    tokens = in_task(base, study_id, 100, answered=0)
    calls = []
    for t in tokens:
        calls += [lambda t=t: ("withdraw", t, post(base, "withdraw", t)), lambda t=t: ("answer", t, answer(base, t, 0))]
    replies = parallel(calls)
    no_server_errors([r for _k, _t, r in replies], server_process)
    db_state = stored(app, tokens)
    outcomes = set()
    for kind, token, r in replies:
        state, _code, n, moves = db_state[token]
        assert state in ("returned", "data_complete"), state
        assert moves[-2:-1] == [("instructed", "in_task")] and moves[-1] == ("in_task", state)  # one final step
        outcomes.add(state)
        if kind == "withdraw":
            left = r.status_code == 200 and "You have left the study" in r.text
            assert left == (state == "returned"), (r.status_code, r.headers.get("Location"), state)
            if not left:
                assert r.status_code == 303 and r.headers["Location"].endswith("/debrief")
        else:
            saved = r.status_code == 201 and r.json()["state"] == "data_complete"
            assert saved == (state == "data_complete"), (r.status_code, r.text[:200], state)
            if not saved:
                assert r.status_code == 409 and r.json()["error"] == "not_in_task"
            assert n == (1 if saved else 0)
    assert outcomes  # at least one kind of outcome seen (which wins is up to the scheduler)


def test_agree_racing_decline_never_contradicts_what_was_stored(app, server_process, stimulus_dir, tmp_path):
    """Item 3: "I agree" and "I do not agree" at once (100 participants, 200 requests)."""
    base = server_process.url
    study_id = one_trial_study(app, stimulus_dir, tmp_path)
    tokens = parallel([lambda i=i: arrive(base, study_id, f"AD{i}") for i in range(100)])
    replies = parallel([lambda t=t, c=c: (c, t, post(base, "consent", t, choice=c))
                        for t in tokens for c in ("agree", "decline")])
    no_server_errors([r for _c, _t, r in replies], server_process)
    db_state = stored(app, tokens)
    for _choice, token, r in replies:
        state, _code, _n, moves = db_state[token]
        assert state in ("consented", "returned")
        assert [m for m in moves if m[0] == "entered"] == [("entered", state)]  # exactly one step out of entered
        if state == "consented":  # both requests are sent on to the instructions
            assert r.status_code == 303 and r.headers["Location"].endswith("/instructions"), r.status_code
        else:  # both are told they declined (and what to do on Prolific), never that they consented
            assert r.status_code == 410 and "chose not to take part" in r.text


def test_triple_debrief_submit_issues_one_code(app, server_process, stimulus_dir, tmp_path):
    """Item 3: three debrief submits at once (70 anonymous participants, whose codes are generated per
    person, 210 requests): one code_issued step, and every reply leads to the one stored code."""
    base = server_process.url
    study_id = one_trial_study(app, stimulus_dir, tmp_path)
    tokens = in_task(base, study_id, 70, answered=1, anonymous=True)
    replies = parallel([lambda t=t: (t, post(base, "debrief", t, q0="x")) for t in tokens for _ in range(3)])
    no_server_errors([r for _t, r in replies], server_process)
    assert all(r.status_code == 303 and r.headers["Location"].endswith("/done") for _t, r in replies)
    db_state = stored(app, tokens)
    for token, (state, code, _n, moves) in db_state.items():
        assert state == "code_issued" and code
        assert moves.count(("data_complete", "code_issued")) == 1
        page = http().get(f"{base}/p/{token}/done").text
        assert f'id="completion-code">{code}<' in page


def test_concurrent_wrong_logins_never_pass_the_lockout(app, db_url, stimulus_dir, tmp_path):
    """Item 10: 200 wrong logins at once for one user from one address check at most the 5 passwords
    the lockout allows; every other attempt is refused (429) before a password is checked."""
    from click.testing import CliRunner

    from advlegit.study_app.cli import cli

    res = CliRunner().invoke(cli, ["create-admin", "--username", "alice"],
                             env={"DATABASE_URL": db_url, "ADVLEGIT_INSTANCE": app.instance_path,
                                  "ADVLEGIT_ADMIN_PASSWORD": "correct horse battery staple"})
    assert res.exit_code == 0, res.output
    env = {"ADVLEGIT_LOGIN_MAX_FAILURES": "5", "ADVLEGIT_LOGIN_MAX_FAILURES_PER_IP": "1000"}
    with ServerProcess(db_url, tmp_path / "srv", env=env) as srv:
        page = requests.get(f"{srv.url}/admin/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        cookies = page.cookies.get_dict()

        def attempt():
            return http().post(f"{srv.url}/admin/login", cookies=cookies, allow_redirects=False,
                               data={"username": "alice", "password": "wrong guess", "csrf": csrf})

        replies = parallel([attempt] * 200)
        no_server_errors(replies, srv)
        codes = [r.status_code for r in replies]
        assert codes.count(401) == 5 and codes.count(429) == 195, sorted(set(codes))


def test_bots_run_twice_with_one_seed_both_finish_with_the_same_answers(app, server_process, stimulus_dir, tmp_path):
    """Item 11: the same seed twice against one database: both runs finish (no uuid_conflict); the
    answers are the same sequence, the answer UUIDs are new."""
    from advlegit.study_app.bots import AnswerModel, Oracle, run_bot

    study_id = small_study(app, stimulus_dir, tmp_path)
    oracle = Oracle.from_stimulus_dir(str(stimulus_dir))
    runs = []
    # noise=1: every answer is drawn from the seed alone, whatever images balancing gave this run.
    for _ in range(2):
        acks = []
        run_bot(server_process.url, study_id, oracle, AnswerModel(kind="effect", noise=1.0), seed=5,
                simulated_token=bot_token(study_id), retries=0, on_ack=lambda _t, body: acks.append(body))  # noqa: B023
        runs.append(acks)
    assert [b["response"] for b in runs[0]] == [b["response"] for b in runs[1]]
    assert [b["rt_ms"] for b in runs[0]] == [b["rt_ms"] for b in runs[1]]
    assert not {b["uuid"] for b in runs[0]} & {b["uuid"] for b in runs[1]}


# ---------------------------------------------------------------- item 12: stale sessions

def make_stale(app, study_id, client, n, first=0):
    """n anonymous arrivals that then went quiet for longer than the study's timeout."""
    from datetime import timedelta

    from advlegit.study_app.db import db, utcnow
    from advlegit.study_app.models import Participant

    tokens = []
    for _ in range(n):
        r = client.get(f"/s/{study_id}")
        tokens.append(re.search(r"/p/([^/]+)/", r.headers["Location"]).group(1))
    with app.app_context():
        db.session.execute(update(Participant).where(Participant.access_token.in_(tokens))
                           .values(last_seen_at=utcnow() - timedelta(hours=2)))
        db.session.commit()
    return tokens


def statements_during(app, fn) -> int:
    """Statements (each parameter set of an executemany counted once) the app's engine ran during fn."""
    from advlegit.study_app.db import db

    count = [0]

    def seen(_conn, _cursor, _statement, parameters, _context, executemany):
        count[0] += len(parameters) if executemany else 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return count[0]


def start(client, token):
    assert client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf_of(token)}).status_code == 303
    r = client.post(f"/p/{token}/instructions", data={"csrf": csrf_of(token)})
    assert r.status_code == 303 and r.headers["Location"].endswith("/task")


def test_stale_sessions_are_timed_out_in_bulk(app, client, stimulus_dir, tmp_path):
    """Item 12: a Start costs the same number of statements with 3 or 40 stale sessions to time out,
    and every one of them is timed out with its transition recorded."""
    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant, Transition

    study_id = small_study(app, stimulus_dir, tmp_path)
    # The study's first Start also makes its fill rows (one per item): not what is compared here.
    start(client, re.search(r"/p/([^/]+)/", client.get(f"/s/{study_id}").headers["Location"]).group(1))
    costs = []
    for n in (3, 40):
        stale = make_stale(app, study_id, client, n)
        token = re.search(r"/p/([^/]+)/", client.get(f"/s/{study_id}").headers["Location"]).group(1)
        costs.append(statements_during(app, lambda: start(client, token)))  # noqa: B023
        with app.app_context():
            states = db.session.execute(select(Participant.state, func.count()).where(
                Participant.access_token.in_(stale)).group_by(Participant.state)).all()
            assert states == [("timed_out", n)]
            moves = db.session.scalar(select(func.count()).select_from(Transition).join(Participant).where(
                Participant.access_token.in_(stale), Transition.from_state == "entered",
                Transition.to_state == "timed_out"))
            assert moves == n
    assert costs[0] == costs[1], costs


def test_stale_sessions_are_timed_out_before_the_allocation_lock(app, db_url, stimulus_dir, tmp_path):
    """Item 12, PostgreSQL (SQLite has one writer, so nothing there runs beside a lock): while another
    transaction holds the study's allocation lock, a Start has already timed the stale sessions out
    (committed, visible to others) and waits only for its own allocation."""
    import pytest

    if not db_url.startswith("postgresql"):
        pytest.skip("a row lock held by another transaction is a PostgreSQL notion")
    from sqlalchemy import create_engine

    from advlegit.study_app.db import db
    from advlegit.study_app.models import Participant

    study_id = small_study(app, stimulus_dir, tmp_path)
    client = app.test_client()
    stale = make_stale(app, study_id, client, 20)
    token = re.search(r"/p/([^/]+)/", client.get(f"/s/{study_id}").headers["Location"]).group(1)
    assert client.post(f"/p/{token}/consent", data={"choice": "agree", "csrf": csrf_of(token)}).status_code == 303
    holder = create_engine(db_url)
    result = {}
    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT 1 FROM allocation_locks WHERE study_id = :s FOR UPDATE"), {"s": study_id})
            worker = threading.Thread(target=lambda: result.setdefault(
                "r", app.test_client().post(f"/p/{token}/instructions", data={"csrf": csrf_of(token)})))
            worker.start()
            seen = 0
            for _ in range(200):  # up to ~20 s for the Start to reach the lock
                with holder.connect() as look:
                    seen = look.scalar(select(func.count()).select_from(Participant).where(
                        Participant.access_token.in_(stale), Participant.state == "timed_out"))
                if seen == len(stale):
                    break
                threading.Event().wait(0.1)
            conn.rollback()  # release the lock in every case, so the Start can finish
            worker.join(60)
        assert seen == len(stale)
        assert result["r"].status_code == 303 and result["r"].headers["Location"].endswith("/task")
    finally:
        holder.dispose()
        with app.app_context():
            db.session.remove()
