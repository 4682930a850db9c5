"""The PostgreSQL backend: two autocommit statements on the counter engine's connection.

One counts the rate limits and reads the participant, its study's task and the trial its pointer is at;
the other moves the pointer only if it is still at this trial and inserts the answer only if it moved (a
CTE). Each is atomic and durable when it returns (synchronous commit); a unique violation (the UUID or the
trial already stored) undoes both parts of the second."""
from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from .. import security
from ..db import UTCDateTime
from ..responses import ANSWER_FIELDS
from .pointer import Pointer

POINTER_COLUMNS = ("p.id AS participant_id, p.state, p.next_trial_index AS next_index, p.n_trials, s.task_type, "
                   "s.id AS study_id, t.id AS next_trial_id")

STORE_NEXT = text(
    # :trial_index is the answer's own, which takes_plainly() checked is where the pointer was
    "WITH moved AS (UPDATE participants SET next_trial_index = :next_index, last_seen_at = :now "
    "WHERE id = :participant_id AND state = 'in_task' AND next_trial_index = :trial_index RETURNING id) "
    f"INSERT INTO responses (participant_id, trial_id, received_at, {', '.join(ANSWER_FIELDS)}) "
    f"SELECT moved.id, :trial_id, :now, {', '.join(':' + c for c in ANSWER_FIELDS)} FROM moved RETURNING id"
).bindparams(*[bindparam(c, type_=UTCDateTime()) for c in ("now", "shown_at", "answered_at")])


@functools.lru_cache(maxsize=8)
def look_up_statement(n_counters: int):
    """Count n rate limits (security.to_count's k0, e0, ..) and read the participant: one statement. The
    participant columns are NULL for an unknown token (the counts are still returned)."""
    counters = f"WITH {security.counter_cte(n_counters)} " if n_counters else ""
    counts = "".join(f", (SELECT count FROM c WHERE key = :k{i}) AS count_{i}" for i in range(n_counters))
    return text(
        f"{counters}SELECT {POINTER_COLUMNS}{counts} "
        "FROM (SELECT 1) AS one LEFT JOIN participants p ON p.access_token = :token "
        "LEFT JOIN studies s ON s.id = p.study_id "
        "LEFT JOIN trials t ON t.participant_id = p.id AND t.index = p.next_trial_index"
    ).bindparams(*[bindparam(f"e{i}", type_=UTCDateTime()) for i in range(n_counters)])


class PostgresStore:
    def __init__(self, conn: Connection):
        self.conn = conn

    @classmethod
    @contextmanager
    def attempt(cls) -> Iterator[PostgresStore]:
        with security.counter_engine().connect() as conn:
            yield cls(conn)

    def look_up(self, token: str, limits: Sequence[security.Limit]) -> Pointer | None:
        active, now, params = security.to_count(*limits)
        row = self.conn.execute(look_up_statement(len(active)), {"token": token, **params}).one()._mapping
        security.enforce(active, now, {params[f"k{i}"]: row[f"count_{i}"] for i in range(len(active))})
        security.sweep_sometimes(self.conn)
        pointer = Pointer(**{name: row[name] for name in Pointer._fields})
        return None if pointer.participant_id is None else pointer

    def store_next(self, pointer: Pointer, answer: dict[str, Any], now: datetime) -> bool:
        """Insert the answer and move the pointer past it, if it is still there; False (nothing kept) if not."""
        params = {"participant_id": pointer.participant_id, "trial_id": pointer.next_trial_id,
                  "next_index": pointer.next_index + 1, "now": now, **answer}
        return self.conn.execute(STORE_NEXT, params).first() is not None
