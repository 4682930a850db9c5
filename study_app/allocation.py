"""Balanced, concurrency-safe assignment of stimuli to a participant.

`plan_trials` is pure (design, pool, fill counts, seed -> trial list) so a logged allocation can be
replayed; `allocate` takes the per-study lock, counts fills, plans, stores and logs in one transaction.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import and_, bindparam, insert, literal, or_, select, text, update
from sqlalchemy.orm import defer

from .db import UTCDateTime, db, utcnow
from .design import Design
from .models import AllocationLock, AllocationLog, Image, Participant, Study, Trial, Transition
from .planning import AllocationError, Clean, Item, TrialSpec, kind_of  # noqa: F401  (kept importable from here)
from .states import ACTIVE, FINISHED
from .tasks import task_of


def eligible(design: Design, images: list[Image]) -> list[Image]:
    """The stimuli a study serves: its defenses and kinds; failed attacks only with include_failed.

    A control counts as failed when its adversarial twin failed (its own `success` says whether the
    control fooled the model, which is not a selection criterion): with include_failed off, controls
    then come from the same groups as the adversarial images they are compared with.
    """
    stim = [i for i in images if i.kind == "stimulus"]
    success = {i.key: bool(i.success) for i in stim}
    kinds = set(design.stimuli.kinds)

    def succeeded(i: Image) -> bool:
        if kind_of(i) == "adversarial":
            return bool(i.success)
        return success.get(i.twin_key, True) if i.twin_key else True

    return sorted((i for i in stim if i.defense in design.defenses and kind_of(i) in kinds
                   and (design.stimuli.include_failed or succeeded(i))), key=lambda i: i.key)


def build_pool(design: Design, images: list[Image]) -> tuple[list[Item], list[Clean]]:
    stim = eligible(design, images)
    clean = sorted((Clean(i.key, i.true_label) for i in images if i.kind == "source"), key=lambda c: c.key)
    # The task's pairing makes the items: single images, or like-with-like pairs (see Design.conditions).
    return task_of(design.task).pool_for(design, stim), clean


def plan_trials(design: Design, items: list[Item], clean: list[Clean], counts: dict[str, int], seed: int,
                attempts: int = 25) -> list[TrialSpec]:
    """Deterministic in (inputs, seed). Main trials are an exact optimal choice; the clean practice and
    attention-check digits are drawn after, and a draw that runs out is retried with derived seeds."""
    error: AllocationError | None = None
    for attempt in range(attempts):
        rng = random.Random(seed if attempt == 0 else f"{seed}/{attempt}")
        try:
            return _plan(design, items, clean, counts, rng)
        except AllocationError as exc:
            error = exc
    assert error is not None
    raise error


def _choose_main(items: list[Item], cells: list[tuple[str, ...]], per_cell: int, counts: dict[str, int],
                 rng: random.Random) -> list[Item]:
    """per_cell items of every cell, no two from one source digit, as level as possible.

    A min-cost flow (cells -> items -> source digits): an item costs by how far its fill is above the
    least-filled item of its cell, so an over-filled item is taken only when no assignment avoids it;
    a small random part breaks ties. A greedy pick cannot promise this: two cells' emptiest items
    often share a source digit.
    """
    floor: dict[tuple[str, ...], int] = {}
    for it in items:
        n = counts.get(it.key, 0)
        floor[it.cell] = min(floor.get(it.cell, n), n)
    sources = sorted({it.source for it in items})
    # Node ids: 0 = start, 1 = end, cells, then source digits.
    cell_id = {c: 2 + k for k, c in enumerate(cells)}
    src_id = {s: 2 + len(cells) + k for k, s in enumerate(sources)}
    graph: list[list[int]] = [[] for _ in range(2 + len(cells) + len(sources))]
    to, cap, cost, item_of = [], [], [], []

    def edge(u: int, v: int, c: int, w: int, item: Item | None = None) -> None:
        for a, b, cc, ww in ((u, v, c, w), (v, u, 0, -w)):
            graph[a].append(len(to))
            to.append(b), cap.append(cc), cost.append(ww), item_of.append(item)

    for c in cells:
        edge(0, cell_id[c], per_cell, 0)
    # A source digit whose items are least-filled in several cells can serve only one of them per
    # participant; using such digits early leaves no clash for the last least-filled items of a level.
    contested: dict[str, int] = {}
    for it in items:
        if counts.get(it.key, 0) == floor[it.cell]:
            contested[it.source] = contested.get(it.source, 0) + 1
    for it in items:
        above = counts.get(it.key, 0) - floor[it.cell]
        w = above * 1_000_000 + (0 if above else -1000 * contested[it.source]) + rng.randrange(1000)
        edge(cell_id[it.cell], src_id[it.source], 1, w, it)
    for s_ in sources:
        edge(src_id[s_], 1, 1, 0)
    need = per_cell * len(cells)
    for _ in range(need):  # one augmenting path per trial (all capacities on the way are 1 or more)
        dist = [None] * len(graph)
        prev = [-1] * len(graph)
        dist[0] = 0
        queue, queued = [0], {0}
        while queue:  # Bellman-Ford queue (SPFA): residual costs can be negative
            u = queue.pop(0)
            queued.discard(u)
            for e in graph[u]:
                if cap[e] > 0 and (dist[to[e]] is None or dist[u] + cost[e] < dist[to[e]]):
                    dist[to[e]] = dist[u] + cost[e]
                    prev[to[e]] = e
                    if to[e] not in queued:
                        queue.append(to[e])
                        queued.add(to[e])
        if dist[1] is None:
            raise AllocationError("not enough distinct source digits for a balanced sequence")
        v = 1
        while v != 0:
            e = prev[v]
            cap[e] -= 1
            cap[e ^ 1] += 1
            v = to[e ^ 1]
    chosen = [item_of[e] for e in range(0, len(to), 2) if item_of[e] is not None and cap[e] == 0]
    return sorted(chosen, key=lambda it: it.key)


def _plan(design: Design, items: list[Item], clean: list[Clean], counts: dict[str, int],
          rng: random.Random) -> list[TrialSpec]:
    cells = design.conditions()
    per_cell = design.trials // len(cells)
    chosen = _choose_main(items, cells, per_cell, counts, rng)
    used_sources = {it.source for it in chosen}
    rng.shuffle(chosen)
    main: list[TrialSpec] = []
    flips: dict[tuple[str, ...], bool] = {c: rng.random() < 0.5 for c in cells}
    task = task_of(design.task)
    for it in chosen:
        main.append(task.main_trial(it, flips))

    free_clean = [c for c in clean if c.key not in used_sources]
    rng.shuffle(free_clean)

    def clean_trial(kind: str, n: int) -> TrialSpec:
        return task.clean_trial(kind, n, free_clean.pop(), free_clean, rng)

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
        select(Image.key, Image.group, Image.stimulus_kind, Image.defense, ImageB.defense)
        .select_from(Trial)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Image, Image.id == Trial.image_id)
        .outerjoin(ImageB, ImageB.id == Trial.image_b_id)
        .where(Participant.study_id == study.id, Trial.kind == "main", counted,
               Participant.review.notin_(("rejected", "excluded")))
    )
    counts: dict[str, int] = {}
    order = {d: n for n, d in enumerate(design.defenses)}
    task = task_of(design.task)
    for key, group, kind, da, db_ in rows:
        key = task.fill_key(key, group, kind, da, db_, order)
        counts[key] = counts.get(key, 0) + 1
    return counts


# PostgreSQL, one statement: rows another transaction holds (a participant acting right now) are
# skipped, never waited for, so concurrent Starts cannot deadlock here; a skipped row is taken next time.
_TIME_OUT_PG = text(
    "WITH stale AS (SELECT id, state FROM participants WHERE study_id = :study AND state IN :active "
    "AND last_seen_at < :cutoff FOR UPDATE SKIP LOCKED), "
    "moved AS (UPDATE participants SET state = 'timed_out' FROM stale WHERE participants.id = stale.id "
    "RETURNING participants.id, stale.state) "
    "INSERT INTO transitions (participant_id, from_state, to_state, reason, at) "
    "SELECT id, state, 'timed_out', 'no activity', :now FROM moved"
).bindparams(bindparam("active", expanding=True), bindparam("cutoff", type_=UTCDateTime()),
             bindparam("now", type_=UTCDateTime()))


def time_out_stale(study: Study, design: Design) -> None:
    """Time out the study's inactive sessions in bulk, inside the caller's transaction (the caller
    commits). A constant number of statements however many there are, and run before the allocation
    lock is taken (participant/views.py), so a backlog never holds up other people's Starts."""
    cutoff, now = utcnow() - timedelta(minutes=design.timeout_minutes), utcnow()
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(_TIME_OUT_PG, {"study": study.id, "active": list(ACTIVE), "cutoff": cutoff, "now": now})
        return
    # SQLite: the transaction holds the database's one write lock, so both statements see the same rows.
    stale = and_(Participant.study_id == study.id, Participant.state.in_(ACTIVE), Participant.last_seen_at < cutoff)
    cols = ["participant_id", "from_state", "to_state", "reason", "at"]
    db.session.execute(insert(Transition).from_select(cols, select(
        Participant.id, Participant.state, literal("timed_out"), literal("no activity"), literal(now, UTCDateTime()))
        .where(stale)))
    # last_seen_at kept: it says when they were last here
    db.session.execute(update(Participant).where(stale).values(state="timed_out")
                       .execution_options(synchronize_session=False))


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
