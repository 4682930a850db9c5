"""Store one answer: `store(token, body)` -> Stored or ResponseError, the same on every database.

The usual answer (the next trial, in task, not the last) is stored by the engine's backend in the fewest
round trips it can: two autocommit statements on PostgreSQL (postgres.py), one short transaction elsewhere
(portable.py). Anything else takes the locked ORM path (locked.py), and every answer passes the same
validation (responses.parse), so both backends give the same replies and rows (tests/study_app/
test_app_answer_store.py checks them side by side).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from ..db import db, utcnow
from ..responses import ResponseError, Stored, parse, study_presentation
from ..security import Limit
from .locked import store_locked
from .portable import PortableStore
from .postgres import PostgresStore

__all__ = ["ResponseError", "Stored", "backend_for", "store"]

Backend = type[PortableStore] | type[PostgresStore]
BACKENDS: dict[str, Backend] = {"postgresql": PostgresStore}
ATTEMPTS = 5


def backend_for(engine: Engine) -> Backend:
    """The backend for an engine's dialect: PostgreSQL's own, or the portable one."""
    return BACKENDS.get(engine.dialect.name, PortableStore)


def store(token: str, body: Any, limits: Sequence[Limit] = ()) -> Stored | ResponseError:
    """Count `limits` (raising security.RateLimited past one), validate `body` (the request's JSON, None if
    it was not JSON) for the participant whose secret link is `token`, and store it once, however often it
    is sent (the client's UUID). Storing is idempotent, so a dropped database connection (a PostgreSQL
    restart, a failover) is retried on a fresh one before the client sees an error."""
    backend = backend_for(db.engine)
    for attempt in range(ATTEMPTS):
        try:
            return _store_once(backend, token, body, limits)
        except ResponseError as refused:
            return refused
        except OperationalError:
            db.session.rollback()
            if attempt == ATTEMPTS - 1:
                raise  # the app's handler answers 503 + Retry-After; the client retries the same UUID
            current_app.logger.warning("database error while storing an answer; retrying")
            time.sleep(0.2 * 2 ** attempt)


def _store_once(backend: Backend, token: str, body: Any, limits: Sequence[Limit]) -> Stored:
    with backend.attempt() as attempt:
        pointer = attempt.look_up(token, limits)
        if body is None:
            raise ResponseError(400, "invalid_json",
                                "send the response as a JSON object (Content-Type: application/json)")
        if pointer is None:
            raise ResponseError(404, "unknown_participant", "unknown participant link")
        answer = parse(body, pointer.task_type, study_presentation(pointer.study_id))
        if pointer.takes_plainly(answer["trial_index"]):
            try:
                if attempt.store_next(pointer, answer, utcnow()):
                    return Stored(False, pointer.next_index, pointer.next_index + 1, "in_task", pointer.n_trials)
            except IntegrityError:
                pass  # lost a race, or the UUID is taken: the locked path says which
    return store_locked(pointer.participant_id, answer)
