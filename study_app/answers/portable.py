"""The portable backend (SQLite, or any engine SQLAlchemy speaks): Core statements on the app's session.

The rate limits are counted in their own short transaction first (security.hit); the lookup, the insert
and the guarded pointer move then share one transaction, committed only when the pointer moved."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, select

from .. import security
from ..db import db
from ..models import Participant, Response, Study, Trial
from .pointer import Pointer

participants, studies, trials = Participant.__table__, Study.__table__, Trial.__table__

LOOK_UP = (
    select(participants.c.id.label("participant_id"), participants.c.state,
           participants.c.next_trial_index.label("next_index"), participants.c.n_trials, studies.c.task_type,
           studies.c.id.label("study_id"), trials.c.id.label("next_trial_id"))
    .select_from(participants.join(studies, studies.c.id == participants.c.study_id)
                 .outerjoin(trials, and_(trials.c.participant_id == participants.c.id,
                                         trials.c.index == participants.c.next_trial_index)))
    .where(participants.c.access_token == bindparam("token")))
INSERT_ANSWER = Response.__table__.insert()
MOVE_POINTER = (participants.update()
                .where(participants.c.id == bindparam("participant_id"), participants.c.state == "in_task",
                       participants.c.next_trial_index == bindparam("trial_index"))
                .values(next_trial_index=bindparam("next_index"), last_seen_at=bindparam("now")))


class PortableStore:
    @classmethod
    @contextmanager
    def attempt(cls) -> Iterator[PortableStore]:
        try:
            yield cls()
        finally:
            db.session.rollback()  # nothing of this attempt is left open (a stored answer is committed)

    def look_up(self, token: str, limits: Sequence[security.Limit]) -> Pointer | None:
        security.hit(*limits)
        row = db.session.connection().execute(LOOK_UP, {"token": token}).first()
        return None if row is None else Pointer(**row._mapping)

    def store_next(self, pointer: Pointer, answer: dict[str, Any], now: datetime) -> bool:
        """Insert the answer and move the pointer past it, if it is still there; False (nothing kept) if not."""
        conn = db.session.connection()
        conn.execute(INSERT_ANSWER, {"participant_id": pointer.participant_id, "trial_id": pointer.next_trial_id,
                                     "received_at": now, **answer})
        moved = conn.execute(MOVE_POINTER, {"participant_id": pointer.participant_id, "trial_index": pointer.next_index,
                                            "next_index": pointer.next_index + 1, "now": now}).rowcount == 1
        if moved:
            db.session.commit()
        return moved
