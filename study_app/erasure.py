"""Erasure on request: every row that holds a participant's data is deleted, in one transaction.

Used when a participant withdraws and asks for their answers to be deleted, and when a researcher
erases someone on request (found by platform id). What remains is one audit row naming the
pseudonymous participant id and the counts, never the platform id or any answer. Fill counts for
balance (the fill_counts rows) are decremented first, so the study's balance no longer counts the person.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from . import audit
from .db import db
from .fills import uncount_participant
from .models import AllocationLog, Participant, Response, ReviewEvent, Transition, Trial


class ErasureError(ValueError):
    pass


@dataclass(frozen=True)
class Erased:
    participant_id: str
    study_id: str
    responses: int
    trials: int


def erase(p: Participant, actor: str, reason: str) -> Erased:
    """Delete the participant and everything keyed to them, inside the caller's transaction (the caller
    holds the participant's row lock and commits)."""
    pid, study_id = p.id, p.study_id
    uncount_participant(p)  # their trials stop counting toward balance, in this same transaction
    n_resp = db.session.scalar(select(func.count()).select_from(Response).where(Response.participant_id == pid))
    n_trials = db.session.scalar(select(func.count()).select_from(Trial).where(Trial.participant_id == pid))
    # Children first (foreign keys), with the ORM's identity map bypassed: these are bulk deletes.
    for model in (Response, Trial, Transition, ReviewEvent, AllocationLog):
        db.session.execute(delete(model).where(model.participant_id == pid).execution_options(
            synchronize_session=False))
    db.session.execute(delete(Participant).where(Participant.id == pid).execution_options(
        synchronize_session=False))
    db.session.expunge(p)
    audit.record(actor, "erasure", study_id,
                 f"participant {pid} erased ({reason}): {n_resp} answers and {n_trials} trials deleted")
    return Erased(pid, study_id, int(n_resp or 0), int(n_trials or 0))


def find(study_id: str, platform_pid: str) -> Participant:
    """The participant a platform id names in a study, matched as the platform issues ids (Prolific ids
    are stored in lower case, MTurk worker ids in upper case)."""
    pid = (platform_pid or "").strip()
    if not pid:
        raise ErasureError("give the participant's platform id (Prolific or MTurk id)")
    rows = db.session.scalars(select(Participant).where(
        Participant.study_id == study_id,
        Participant.platform_pid.in_({pid, pid.lower(), pid.upper()})).with_for_update()).all()
    if not rows:
        raise ErasureError(f"no participant with platform id {pid!r} in study {study_id}")
    if len(rows) > 1:
        raise ErasureError(f"platform id {pid!r} names {len(rows)} participants in study {study_id} "
                           "(one per platform); erase them by participant id")
    return rows[0]
