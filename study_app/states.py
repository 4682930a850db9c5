"""The participant state machine; every transition is a timestamped row."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm.attributes import set_committed_value

from .db import db, utcnow
from .fills import counts_toward_fill, recount
from .models import Participant, Transition

ALLOWED: dict[str, set[str]] = {
    "entered": {"consented", "returned", "timed_out", "excluded"},
    "consented": {"instructed", "returned", "timed_out", "excluded"},
    "instructed": {"in_task", "returned", "timed_out", "excluded"},
    "in_task": {"data_complete", "returned", "timed_out", "excluded"},
    "data_complete": {"code_issued", "excluded"},
    "code_issued": {"excluded"},
    "returned": {"excluded"},
    "timed_out": {"entered", "consented", "instructed", "in_task", "returned", "excluded"},  # resume
    "excluded": set(),
}
# States whose allocated trials count toward filling stimuli (abandoned ones do not).
FINISHED = ("data_complete", "code_issued")
ACTIVE = ("entered", "consented", "instructed", "in_task")


class TransitionError(ValueError):
    pass


def transition(p: Participant, to_state: str, reason: str = "") -> None:
    """Move p to to_state inside the caller's transaction (the caller commits)."""
    if to_state not in ALLOWED.get(p.state, set()):
        raise TransitionError(f"cannot go from {p.state} to {to_state}")
    now = utcnow()
    db.session.add(Transition(participant_id=p.id, from_state=p.state, to_state=to_state, reason=reason, at=now))
    counted, allocated = counts_toward_fill(p.state, p.review), p.state == "instructed"
    p.state = to_state
    p.last_seen_at = now
    if not allocated:  # instructed -> in_task is the allocation, which counts its own items (allocate)
        recount(p, counted)


def enter(p: Participant, reason: str = "") -> None:
    db.session.add(Transition(participant_id=p.id, from_state=None, to_state="entered", reason=reason, at=p.created_at))


def resume_if_timed_out(p: Participant) -> None:
    """A timed-out participant who comes back continues where they were; nothing they did is lost."""
    if p.state != "timed_out":
        return
    # Two tabs resuming at once must not both count the person again: hold the row, read it afresh.
    current = db.session.scalar(select(Participant.state).where(Participant.id == p.id).with_for_update())
    if current != "timed_out":
        set_committed_value(p, "state", current)
        return
    # The last time out from an active state: an exclusion undone since also ends in timed_out (from
    # excluded), and resuming must not lead back into the exclusion.
    before = [t for t in p.transitions if t.to_state == "timed_out" and t.from_state in ACTIVE]
    previous = before[-1].from_state if before else "entered"
    transition(p, previous, "resumed after timeout")


def reinstate(p: Participant, reason: str) -> None:
    """Undo an exclusion: back to the state the participant was excluded from, as a recorded transition.

    Not in ALLOWED on purpose: only a researcher's review may leave `excluded`, never a participant's page.
    """
    if p.state != "excluded":
        raise TransitionError(f"cannot reinstate from {p.state}")
    before = [t for t in p.transitions if t.to_state == "excluded"]
    previous = before[-1].from_state if before and before[-1].from_state else "entered"
    now = utcnow()
    db.session.add(Transition(participant_id=p.id, from_state="excluded", to_state=previous, reason=reason, at=now))
    counted = counts_toward_fill(p.state, p.review)
    p.state = previous
    recount(p, counted)
