"""Every answer but the plain next one, through the ORM under the participant's row lock: a retry (same
UUID), a trial out of step, a participant not in task or timed out, and the last answer, which completes
the participant. Shared by both backends, so each case gives the same reply and rows on every engine."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..db import db, utcnow
from ..models import Participant, Response, Trial
from ..responses import ResponseError, Stored, count_stored
from ..states import resume_if_timed_out, transition


def store_locked(participant_id: str, answer: dict[str, Any]) -> Stored:
    """Store a parsed answer in one transaction of the app's session, or raise ResponseError (nothing kept).

    The row stays locked until the commit (PostgreSQL), so a withdraw or another last answer arriving at
    once waits, then sees the state this answer left (participant/views.py at_state)."""
    p = db.session.scalar(select(Participant).where(Participant.id == participant_id).with_for_update()
                          .execution_options(populate_existing=True))
    resume_if_timed_out(p)
    try:
        return _store(p, answer)
    finally:
        db.session.rollback()  # a refusal or a retry keeps nothing (not even the resumption); a new answer is committed


def _store(p: Participant, answer: dict[str, Any]) -> Stored:
    index = answer["trial_index"]
    if p.state != "in_task" or index != p.next_trial_index:
        if duplicate := _stored_before(p, answer):
            return duplicate
        if p.state != "in_task":
            raise ResponseError(409, "not_in_task", f"responses are not accepted in state '{p.state}'")
        if index >= p.n_trials:
            raise ResponseError(404, "no_such_trial", f"there is no trial {index}")
        if index < p.next_trial_index:
            raise ResponseError(409, "already_answered", f"trial {index} already has a stored answer")
        raise ResponseError(409, "out_of_order", f"trial {p.next_trial_index} must be answered first")
    trial_id = db.session.scalar(select(Trial.id).where(Trial.participant_id == p.id, Trial.index == index))
    if trial_id is None:
        raise ResponseError(404, "no_such_trial", f"there is no trial {index}")
    now = utcnow()
    db.session.add(Response(participant_id=p.id, trial_id=trial_id, received_at=now, **answer))
    p.next_trial_index = index + 1
    p.last_seen_at = now
    if p.next_trial_index >= p.n_trials:
        db.session.flush()
        if (n := count_stored(p)) == p.n_trials:
            transition(p, "data_complete", f"{n} responses stored")
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent copy of this request (or another answer to this trial) won the race, or the
        # UUID is already someone else's.
        db.session.rollback()
        db.session.refresh(p)
        if duplicate := _stored_before(p, answer):
            return duplicate
        raise ResponseError(409, "already_answered", f"trial {index} already has a stored answer") from None
    return Stored(False, index, p.next_trial_index, p.state, p.n_trials)


def _stored_before(p: Participant, answer: dict[str, Any]) -> Stored | None:
    """The answer stored before under this UUID, if it is this one; a UUID used for another answer is a conflict."""
    prior = db.session.scalar(select(Response).where(Response.uuid == answer["uuid"]))
    if prior is None:
        return None
    if (prior.participant_id, prior.trial_index, prior.response) != (p.id, answer["trial_index"], answer["response"]):
        raise ResponseError(409, "uuid_conflict", "this response id was already used for a different answer")
    return Stored(True, prior.trial_index, p.next_trial_index, p.state, p.n_trials)
