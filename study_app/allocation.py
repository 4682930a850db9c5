"""Balanced, concurrency-safe assignment of stimuli to a participant.

`plan_trials` is pure (design, pool, fill counts, seed -> trial list) so a logged allocation can be
replayed; `allocate` takes the per-study lock, counts fills, plans, stores and logs in one transaction.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import defer

from .db import db, utcnow
from .design import Design
from .models import AllocationLock, AllocationLog, Image, Participant, Study, Trial, Transition
from .states import ACTIVE, FINISHED


class AllocationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Item:
    """One fillable slot kind: an adversarial image (identify/rate) or a matched pair (compare)."""

    key: str
    cell: tuple[str, ...]
    source: str
    image: str
    image_b: str | None
    prompt_label: int


@dataclass(frozen=True)
class Clean:
    key: str
    label: int


@dataclass
class TrialSpec:
    kind: str
    image: str
    image_b: str | None = None
    prompt_label: int | None = None
    expected: str | None = None
    item: str | None = None


def build_pool(design: Design, images: list[Image]) -> tuple[list[Item], list[Clean]]:
    stim = sorted((i for i in images if i.kind == "stimulus" and i.success and i.defense in design.defenses),
                  key=lambda i: i.key)
    clean = sorted((Clean(i.key, i.true_label) for i in images if i.kind == "source"), key=lambda c: c.key)
    if design.task != "compare":
        return [Item(i.key, (i.defense,), i.source_key, i.key, None, i.target_label) for i in stim], clean
    by_group: dict[str, dict[str, Image]] = {}
    for i in stim:
        by_group.setdefault(i.group, {})[i.defense] = i
    items = []
    for group, members in sorted(by_group.items()):
        for a, b in design.conditions():
            if a in members and b in members:
                ia, ib = members[a], members[b]
                items.append(Item(f"{group}|{a}|{b}", (a, b), ia.source_key, ia.key, ib.key, ia.target_label))
    return items, clean


def plan_trials(design: Design, items: list[Item], clean: list[Clean], counts: dict[str, int], seed: int,
                attempts: int = 25) -> list[TrialSpec]:
    """Deterministic in (inputs, seed). A greedy pass can paint itself into a corner when a few cells
    have few stimuli; it then retries with derived tie-breaking orders before giving up."""
    error: AllocationError | None = None
    for attempt in range(attempts):
        try:
            return _plan(design, items, clean, counts, random.Random(seed if attempt == 0 else f"{seed}/{attempt}"))
        except AllocationError as exc:
            error = exc
    assert error is not None
    raise error


def _plan(design: Design, items: list[Item], clean: list[Clean], counts: dict[str, int], rng: random.Random) -> list[TrialSpec]:
    cells = design.conditions()
    per_cell = design.trials // len(cells)
    by_cell: dict[tuple[str, ...], list[Item]] = {c: [] for c in cells}
    for it in items:
        by_cell[it.cell].append(it)
    for c in cells:
        rng.shuffle(by_cell[c])  # random tie-break among equally filled items
    used_sources: set[str] = set()
    chosen: list[Item] = []
    taken = {c: 0 for c in cells}
    for _ in range(per_cell):
        # The cell whose least-filled free item is emptiest picks first, so no cell starves another.
        order = list(cells)
        rng.shuffle(order)
        for _ in cells:
            def best(c):
                free = [it for it in by_cell[c] if it.source not in used_sources]
                return min(free, key=lambda it: counts.get(it.key, 0)) if free else None
            open_cells = [c for c in order if taken[c] <= min(taken.values())]
            free = {c: sum(1 for it in by_cell[c] if it.source not in used_sources) for c in open_cells}
            if min(free.values()) == 0:
                raise AllocationError("not enough distinct source digits left for a balanced sequence")
            # The most constrained cell picks first (fewest free items), then the emptiest item.
            c = min(open_cells, key=lambda c: (free[c], counts.get(best(c).key, 0)))
            it = best(c)
            chosen.append(it)
            used_sources.add(it.source)
            taken[c] += 1
    rng.shuffle(chosen)
    main: list[TrialSpec] = []
    flips: dict[tuple[str, ...], bool] = {c: rng.random() < 0.5 for c in cells}
    for it in chosen:
        if design.task == "compare":
            # Alternate sides within each pair so each defense is on the left half the time.
            swap = flips[it.cell]
            flips[it.cell] = not swap
            left, right = (it.image_b, it.image) if swap else (it.image, it.image_b)
            main.append(TrialSpec("main", left, right, it.prompt_label, None, it.key))
        else:
            main.append(TrialSpec("main", it.image, None, it.prompt_label if design.task == "rate" else None, None, it.key))

    free_clean = [c for c in clean if c.key not in used_sources]
    rng.shuffle(free_clean)

    def clean_trial(kind: str, n: int) -> TrialSpec:
        a = free_clean.pop()
        if design.task == "identify":
            return TrialSpec(kind, a.key, None, None, str(a.label))
        if design.task == "rate":
            if kind == "practice" and n % 2 == 1:  # odd practice trials ask about a wrong class
                return TrialSpec(kind, a.key, None, (a.label + 1 + rng.randrange(9)) % 10, "low")
            return TrialSpec(kind, a.key, None, a.label, "high")
        other = next((c for c in reversed(free_clean) if c.label != a.label), None)
        if other is None:
            raise AllocationError("compare needs clean digits of two classes")
        free_clean.remove(other)
        if rng.random() < 0.5:
            return TrialSpec(kind, a.key, other.key, a.label, "left")
        return TrialSpec(kind, other.key, a.key, a.label, "right")

    try:
        practice = [clean_trial("practice", n) for n in range(design.practice)]
        checks = [clean_trial("attention_check", n) for n in range(design.attention_checks)]
    except IndexError as exc:
        raise AllocationError("not enough clean digits for practice and attention checks") from exc
    # Spread attention checks evenly through the main block, never first.
    for k, chk in enumerate(checks):
        span = len(main) + len(checks)
        pos = min(len(main), max(1, (k + 1) * span // (len(checks) + 1) + rng.randrange(-1, 2)))
        main.insert(pos, chk)
    return practice + main


def fill_counts(study: Study, design: Design) -> dict[str, int]:
    """Main-trial allocations per item, counting finished and recently active participants only."""
    cutoff = utcnow() - timedelta(minutes=design.timeout_minutes)
    counted = or_(
        Participant.state.in_(FINISHED),
        and_(Participant.state == "in_task", Participant.last_seen_at >= cutoff),
    )
    ImageB = db.aliased(Image)
    rows = db.session.execute(
        select(Image.key, Image.group, Image.defense, ImageB.defense)
        .select_from(Trial)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Image, Image.id == Trial.image_id)
        .outerjoin(ImageB, ImageB.id == Trial.image_b_id)
        .where(Participant.study_id == study.id, Trial.kind == "main", counted,
               Participant.review.notin_(("rejected", "excluded")))
    )
    counts: dict[str, int] = {}
    cells = set(design.conditions())
    for key, group, da, db_ in rows:
        if design.task == "compare":
            pair = (da, db_) if (da, db_) in cells else (db_, da)
            key = f"{group}|{pair[0]}|{pair[1]}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def time_out_stale(study: Study, design: Design) -> None:
    cutoff = utcnow() - timedelta(minutes=design.timeout_minutes)
    stale = db.session.scalars(
        select(Participant).where(Participant.study_id == study.id, Participant.state.in_(ACTIVE),
                                  Participant.last_seen_at < cutoff)
    ).all()
    now = utcnow()
    for p in stale:
        db.session.add(Transition(participant_id=p.id, from_state=p.state, to_state="timed_out",
                                  reason="no activity", at=now))
        p.state = "timed_out"  # last_seen_at kept: it says when they were last here


def lock_study(study_id: str) -> AllocationLock:
    """Serialize allocations of one study. SQLite: the caller's transaction began IMMEDIATE."""
    stmt = select(AllocationLock).where(AllocationLock.study_id == study_id)
    if db.session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    lock = db.session.scalar(stmt)
    if lock is None:
        raise AllocationError(f"study {study_id} has no allocation row")
    return lock


def allocate(participant: Participant) -> list[Trial]:
    """Give `participant` its trial sequence. Must run in a fresh transaction (see begin_allocation)."""
    study = participant.study
    design = Design.from_dict(study.design)
    lock = lock_study(study.id)
    time_out_stale(study, design)
    db.session.flush()
    images = db.session.scalars(select(Image).options(defer(Image.png))  # pixels are not needed here
                                .where(Image.stimulus_set_id == study.stimulus_set_id)).all()
    items, clean = build_pool(design, images)
    counts = fill_counts(study, design)
    seed = study.seed * 100_003 + lock.n_allocated
    specs = plan_trials(design, items, clean, counts, seed)
    by_key = {i.key: i.id for i in images}
    trials = [
        Trial(participant_id=participant.id, index=n, kind=s.kind, image_id=by_key[s.image],
              image_b_id=by_key[s.image_b] if s.image_b else None, prompt_label=s.prompt_label, expected=s.expected)
        for n, s in enumerate(specs)
    ]
    db.session.add_all(trials)
    db.session.execute(update(AllocationLock).where(AllocationLock.study_id == study.id)
                       .values(n_allocated=AllocationLock.n_allocated + 1))
    db.session.add(AllocationLog(study_id=study.id, participant_id=participant.id, seed=seed,
                                 counts_json=json.dumps(counts, sort_keys=True),
                                 plan_json=json.dumps([asdict(s) for s in specs])))
    participant.n_trials = len(trials)
    participant.next_trial_index = 0
    return trials


def begin_allocation() -> None:
    """End any open transaction and start one that holds SQLite's write lock from its first statement."""
    db.session.commit()
    db.session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def replay(log: AllocationLog, study: Study) -> list[TrialSpec]:
    """Recompute a logged allocation from its seed and the counts it saw."""
    design = Design.from_dict(study.design)
    images = db.session.scalars(select(Image).where(Image.stimulus_set_id == study.stimulus_set_id)).all()
    items, clean = build_pool(design, images)
    return plan_trials(design, items, clean, json.loads(log.counts_json), log.seed)
