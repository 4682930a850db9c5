"""Fill counts kept as rows (models.FillCount), changed in the transaction of every event that changes
who counts, so that a Start reads a few rows instead of rescanning every trial of the study.

Who counts: a participant in task or finished, not marked rejected or excluded (`counts_toward_fill`).
The rescan in allocation.fill_counts stays the reference; it also drops an in-task participant unseen
for `timeout_minutes`, which the rows do when allocation.time_out_stale moves them to timed_out —
and that runs before every Start, so at a Start the rows equal the rescan.

The events: allocation (+1 per main item, allocation.allocate), a time-out (allocation.time_out_stale,
in bulk), a resume (states.resume_if_timed_out), withdrawal and every other state change
(states.transition), an exclusion and its undoing (states.reinstate), a review mark rejected/excluded
and its removal (review.set_mark), and erasure (`uncount_participant`, before the trials go).

Rows are always locked in item-key order before they change, so two transactions that both change a
study's rows wait for each other instead of deadlocking (PostgreSQL).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import and_, case, select, update

from .db import db
from .models import FillCount, Image, Participant, Trial

# in_task, and states.FINISHED (kept literal here: states.py imports this module)
COUNTED_STATES = ("in_task", "data_complete", "code_issued")
UNCOUNTED_REVIEWS = ("rejected", "excluded")


def counts_toward_fill(state: str, review: str) -> bool:
    return state in COUNTED_STATES and review not in UNCOUNTED_REVIEWS


def cell_name(cell: tuple[str, ...]) -> str:
    return json.dumps(list(cell))


def item_rank(study_seed: int, key: str) -> int:
    """A fixed random order among a study's items of one fill level (the same on every host)."""
    return int.from_bytes(hashlib.sha256(f"{study_seed}:{key}".encode()).digest()[:4], "big") >> 1


def add(study_id: str, deltas: Counter, conn=None) -> None:
    """n += delta for each item key, in the caller's transaction: two statements however many keys.
    PostgreSQL: the rows are locked first in key order (see the module docstring); SQLite has one writer."""
    keys = sorted(k for k, d in deltas.items() if d)
    if not keys:
        return
    target = conn or db.session
    mine = and_(FillCount.study_id == study_id, FillCount.item_key.in_(keys))
    if target.get_bind().dialect.name == "postgresql" if conn is None else conn.dialect.name == "postgresql":
        target.execute(select(FillCount.item_key).where(mine).order_by(FillCount.item_key).with_for_update())
    target.execute(update(FillCount).where(mine)
                   .values(n=FillCount.n + case({k: deltas[k] for k in keys}, value=FillCount.item_key))
                   .execution_options(synchronize_session=False))


def fill_keys(study, rows: Iterable[tuple]) -> list[tuple[str, str]]:
    """(participant id, item key) for rows of (participant id, image key, group, kind, defense,
    defense of image b): the item each stored main trial filled, as the pool keys it."""
    from .design import Design
    from .tasks import task_of

    design = Design.from_dict(study.design)
    order = {d: n for n, d in enumerate(design.defenses)}
    task = task_of(design.task)
    return [(pid, task.fill_key(key, group, kind, da, db_, order)) for pid, key, group, kind, da, db_ in rows]


def main_trial_rows(participant_ids: list[str]):
    """The select behind fill_keys, for the given participants' main trials."""
    image_b = db.aliased(Image)
    return (select(Trial.participant_id, Image.key, Image.group, Image.stimulus_kind, Image.defense,
                   image_b.defense)
            .join(Image, Image.id == Trial.image_id)
            .outerjoin(image_b, image_b.id == Trial.image_b_id)
            .where(Trial.participant_id.in_(participant_ids), Trial.kind == "main"))


def keys_of(study, participant_ids: list[str]) -> Counter:
    """How many times each item was given to these participants (main trials)."""
    if not participant_ids:
        return Counter()
    return Counter(k for _, k in fill_keys(study, db.session.execute(main_trial_rows(participant_ids))))


def recount(p: Participant, counted_before: bool) -> None:
    """After a change of p's state or review: move p's main items in or out of the counts."""
    now = counts_toward_fill(p.state, p.review)
    if now == counted_before:
        return
    keys = keys_of(p.study, [p.id])
    add(p.study_id, Counter({k: (n if now else -n) for k, n in keys.items()}))


def uncount_participant(p: Participant) -> None:
    """Erasure: take p's main items out of the counts, inside the caller's transaction, before p's trials
    are deleted (study_app/erasure.py). Nothing changes for someone who does not count."""
    if counts_toward_fill(p.state, p.review):
        recount_as = Counter({k: -n for k, n in keys_of(p.study, [p.id]).items()})
        add(p.study_id, recount_as)
