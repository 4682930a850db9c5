"""Participant JSON API: the trial list, one POST per response, the server's view of progress.

Only the participant's own secret token addresses anything, so no one can reach another's trials.
"""
from __future__ import annotations

import functools
import time

from flask import Blueprint, current_app, jsonify, request, url_for
from sqlalchemy import and_, bindparam, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from contracts.stimulus_set import class_names

from .. import security
from ..security import check_participant_csrf, participant_csrf

from ..db import db
from ..db import UTCDateTime, utcnow
from ..models import Participant, Response, Study, StudyImage, Trial
from ..presentation import Presentation
from ..responses import RESPONSE_DEFAULTS, ResponseError, count_stored, parse, store
from ..states import resume_if_timed_out
from ..i18n import use_language
from ..tasks import feedback, label_name, prompt, task_of

bp = Blueprint("api", __name__, url_prefix="/api")


def error(status: int, code: str, message: str):
    return jsonify({"error": code, "message": message}), status


def load(token: str) -> Participant | None:
    return db.session.scalar(select(Participant).where(Participant.access_token == token))


def progress(p: Participant) -> dict:
    return {"state": p.state, "next_index": p.next_trial_index, "n_trials": p.n_trials,
            "stored": count_stored(p), "next_url": url_for("participant.resume", token=p.access_token)}


@bp.get("/p/<token>/state")
def state(token: str):
    p = load(token)
    if p is None:
        return error(404, "unknown_participant", "unknown participant link")
    return jsonify(progress(p))


@functools.lru_cache(maxsize=64)
def _classes(_database: str, stimulus_set_id: int) -> list[str]:
    # A stimulus set never changes after import, so its class names can be cached per database and id.
    from ..models import StimulusSet

    manifest = db.session.get(StimulusSet, stimulus_set_id).manifest
    return class_names(manifest)


@functools.lru_cache(maxsize=256)
def _presentation(_database: str, study_id: str) -> Presentation:
    # A study's design never changes after it is created, so its [presentation] can be cached.
    return Presentation.from_dict(db.session.get(Study, study_id).design.get("presentation"))


@bp.get("/p/<token>/trials")
def trials(token: str):
    p = load(token)
    if p is None:
        return error(404, "unknown_participant", "unknown participant link")
    if p.state not in ("in_task", "data_complete", "code_issued", "timed_out"):
        return error(409, "not_in_task", f"no trials in state '{p.state}'")
    use_language(p.study.design.get("language"))  # prompts, feedback and keys in the study's language
    task = p.study.task_type
    plugin = task_of(task)
    classes = _classes(current_app.config["SQLALCHEMY_DATABASE_URI"], p.study.stimulus_set_id)
    rows = db.session.scalars(select(Trial).where(Trial.participant_id == p.id).order_by(Trial.index)).all()
    shown = {i for t in rows for i in (t.image_id, t.image_b_id) if i}  # this person's images, not the set's
    tokens = dict(db.session.execute(select(StudyImage.image_id, StudyImage.token)
                                     .where(StudyImage.study_id == p.study_id, StudyImage.image_id.in_(shown))).all())

    def img(image_id):
        return url_for("participant.image", token=tokens[image_id]) if image_id else None

    out = []
    for t in rows:
        practice = t.kind == "practice"
        out.append({
            "index": t.index,
            "practice": practice,  # attention checks are indistinguishable from main trials here
            "image": img(t.image_id),
            "image_b": img(t.image_b_id),
            "prompt": prompt(task, t, classes),
            "label": label_name(classes, t.prompt_label),
            "expected": t.expected if practice else None,
            "feedback": feedback(task, t, classes),
            "classes": classes,  # the answer buttons' names (identify: "cat" beside key 3)
            **plugin.trial_text(t, classes),  # rate: the scale's ends, which name the class
        })
    return jsonify({**progress(p), "task": task, "keys": plugin.keys(), "trials": out,
                    "presentation": _presentation(current_app.config["SQLALCHEMY_DATABASE_URI"], p.study_id).to_dict(),
                    "csrf": participant_csrf(p.access_token),
                    "debrief_url": url_for("participant.debrief", token=p.access_token)})


@bp.post("/p/<token>/responses")
def post_response(token: str):
    # Storing is idempotent (the client's UUID), so a dropped database connection (a PostgreSQL restart,
    # a failover) is retried here on a fresh connection before the client sees an error.
    for attempt in range(5):
        try:
            return _answer(token)
        except OperationalError:
            db.session.rollback()
            if attempt == 4:
                raise  # the app's handler answers 503 + Retry-After; the client retries the same UUID
            current_app.logger.warning("database error while storing an answer; retrying")
            time.sleep(0.2 * 2 ** attempt)


def json_body():
    """The request's JSON, or None when it is not JSON. Deeply nested arrays (`[[[[…]]]]`, a few KB)
    make the parser raise RecursionError rather than ValueError: that is bad input too, not a 500."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


_R, _P = Response.__table__, Participant.__table__
_INSERT_RESPONSE = _R.insert()
_MOVE_POINTER = (_P.update()
                 .where(_P.c.id == bindparam("pid"), _P.c.state == "in_task", _P.c.next_trial_index == bindparam("idx"))
                 .values(next_trial_index=bindparam("nxt"), last_seen_at=bindparam("now")))


_T, _S = Trial.__table__, Study.__table__
_LOOKUP = (select(_P.c.id, _P.c.state, _P.c.next_trial_index, _P.c.n_trials, _S.c.task_type, _T.c.id, _S.c.id)
           .select_from(_P.join(_S, _S.c.id == _P.c.study_id)
                        .outerjoin(_T, and_(_T.c.participant_id == _P.c.id, _T.c.index == _P.c.next_trial_index)))
           .where(_P.c.access_token == bindparam("token")))


_COLS = ["uuid", "trial_index", "response", "rt_ms", "shown_at", "answered_at", "screen_width", "screen_height",
         "viewport_width", "viewport_height", "device_pixel_ratio", *RESPONSE_DEFAULTS]
# PostgreSQL, one autocommit statement: move the pointer only if it is still at this trial, and insert
# the answer only if it moved. Atomic and durable when it returns (synchronous commit); a unique
# violation (UUID or trial already stored) undoes both parts.
_STORE_PG = text(
    "WITH moved AS (UPDATE participants SET next_trial_index = :nxt, last_seen_at = :now "
    "WHERE id = :pid AND state = 'in_task' AND next_trial_index = :idx RETURNING id) "
    f"INSERT INTO responses (participant_id, trial_id, received_at, {', '.join(_COLS)}) "
    f"SELECT moved.id, :trial_id, :now, {', '.join(':' + c for c in _COLS)} FROM moved RETURNING id"
).bindparams(*[bindparam(c, type_=UTCDateTime()) for c in ("now", "shown_at", "answered_at")])


_LOOKUP_PG: dict[int, object] = {}


def _lookup_pg(n_counters: int):
    """PostgreSQL: count the rate limits and look the participant up in one autocommit statement."""
    if n_counters not in _LOOKUP_PG:
        cte = f"WITH {security.counter_cte(n_counters)} " if n_counters else ""
        counts = "".join(f", (SELECT count FROM c WHERE key = :k{i})" for i in range(n_counters))
        _LOOKUP_PG[n_counters] = text(
            f"{cte}SELECT p.id, p.state, p.next_trial_index, p.n_trials, s.task_type, t.id, s.id{counts} "
            "FROM (SELECT 1) AS one LEFT JOIN participants p ON p.access_token = :token "
            "LEFT JOIN studies s ON s.id = p.study_id "
            "LEFT JOIN trials t ON t.participant_id = p.id AND t.index = p.next_trial_index"
        ).bindparams(*[bindparam(f"e{i}", type_=UTCDateTime()) for i in range(n_counters)])
    return _LOOKUP_PG[n_counters]


def _answer(token: str):
    """The usual case (the next trial, in task) costs two round trips on PostgreSQL: one statement that
    counts the rate limits and fetches participant, task type and the trial the pointer is at, one that
    stores. Elsewhere the same steps in one transaction. Anything unusual takes the careful path."""
    fast_pg = db.engine.dialect.name == "postgresql"
    limits = security.answer_limits(token)
    if not fast_pg:
        security.hit(*limits)
    conn = security.counter_engine().connect() if fast_pg else db.session.connection()
    try:
        if fast_pg:
            active, now, params = security.to_count(*limits)
            row = conn.execute(_lookup_pg(len(active)), {"token": token, **params}).first()
            security.enforce(active, now, {params[f"k{i}"]: row[7 + i] for i in range(len(active))})
            security.sweep_sometimes(conn)
            row = row[:7]
        check_participant_csrf(token)  # the X-CSRF-Token header task.js sends
        body = json_body()
        if body is None:
            return error(400, "invalid_json", "send the response as a JSON object (Content-Type: application/json)")
        if not fast_pg:
            row = conn.execute(_LOOKUP, {"token": token}).first()
        if row is None or row[0] is None:
            return error(404, "unknown_participant", "unknown participant link")
        pid, state, next_index, n_trials, task, trial_id, study_id = row
        presentation = _presentation(current_app.config["SQLALCHEMY_DATABASE_URI"], study_id)
        try:
            r = parse(body, task, presentation)
        except ResponseError as exc:
            return error(exc.status, exc.code, exc.message)
        if state == "in_task" and trial_id is not None and r["trial_index"] == next_index and next_index + 1 < n_trials:
            now = utcnow()
            try:
                if fast_pg:
                    stored = conn.execute(_STORE_PG, {"pid": pid, "idx": next_index, "nxt": next_index + 1,
                                                      "trial_id": trial_id, "now": now, **r}).first() is not None
                else:
                    conn.execute(_INSERT_RESPONSE,
                                 {"participant_id": pid, "trial_id": trial_id, "received_at": now, **r})
                    stored = conn.execute(_MOVE_POINTER, {"pid": pid, "idx": next_index, "nxt": next_index + 1,
                                                          "now": now}).rowcount == 1
                    if stored:
                        db.session.commit()
                if stored:
                    return jsonify({"saved": True, "duplicate": False, "trial_index": next_index, "state": "in_task",
                                    "next_index": next_index + 1, "n_trials": n_trials}), 201
            except IntegrityError:
                pass  # lost a race or the UUID is taken: the careful path says which
    finally:
        if fast_pg:
            conn.close()
        else:
            db.session.rollback()  # nothing of this attempt is left open (stored answers are committed)
    # The row stays locked until store() commits (PostgreSQL), so a withdraw or another last answer
    # arriving at once waits, then sees the state this answer left (participant/views.py at_state).
    p = db.session.scalar(select(Participant).where(Participant.id == pid).with_for_update()
                          .execution_options(populate_existing=True))
    if p.state == "timed_out":
        resume_if_timed_out(p)
    try:
        stored = store(p, body, task, presentation)
    except ResponseError as exc:
        db.session.rollback()
        return error(exc.status, exc.code, exc.message)
    return jsonify({"saved": True, "duplicate": stored.duplicate, "trial_index": stored.trial_index,
                    "state": stored.state, "next_index": stored.next_index,
                    "n_trials": p.n_trials}), (200 if stored.duplicate else 201)


@bp.errorhandler(413)
def too_large(_exc):
    return error(413, "too_large", "request body too large")


@bp.after_request
def no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp

