"""A researcher's review mark on a participant: one coherent, reversible state with its history.

The mark and the state agree: `excluded` as a mark is the `excluded` state (the person's trials stop
counting toward balance and the analysis drops them); any other mark on an excluded participant first
reinstates them to where they were. Every change is a ReviewEvent row; nothing is overwritten silently.
"""
from __future__ import annotations

from .db import db
from .fills import counts_toward_fill, recount
from .models import REVIEWS, Participant, ReviewEvent
from .states import TransitionError, reinstate, transition

# Marks a researcher must confirm before they apply: they change who counts (excluded) or what a
# participant is paid (rejected).
NEEDS_CONFIRMATION = ("excluded", "rejected")
LABELS = {"": "no mark", "approved": "approved", "rejected": "rejected", "excluded": "excluded"}


class ReviewError(ValueError):
    pass


def set_mark(p: Participant, mark: str, by: str, note: str = "") -> bool:
    """Apply `mark` inside the caller's transaction; False when it is already the mark (nothing changes)."""
    if mark not in REVIEWS:
        raise ReviewError(f"review must be one of: {', '.join(LABELS[m] for m in REVIEWS)}")
    note = note.strip()[:500]
    if mark == p.review and (mark != "excluded" or p.state == "excluded"):
        return False
    try:
        if mark == "excluded" and p.state != "excluded":
            transition(p, "excluded", f"excluded by {by}"[:200])
        elif mark != "excluded" and p.state == "excluded":
            reinstate(p, f"exclusion undone by {by}"[:200])
    except TransitionError as exc:
        raise ReviewError(str(exc)) from exc
    db.session.add(ReviewEvent(participant_id=p.id, previous=p.review, mark=mark, by=by[:100], note=note))
    counted = counts_toward_fill(p.state, p.review)  # the state change above has counted itself
    p.review = mark
    recount(p, counted)  # rejected (or no longer rejected) changes who counts
    return True
