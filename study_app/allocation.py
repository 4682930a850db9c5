"""Balanced, concurrency-safe assignment of stimuli to a participant.

`allocate` takes the per-study lock, reads the least-filled items of each cell from the maintained fill
rows (fills.py), chooses among them (leastfilled.py: exactly as level as a solve over the whole pool),
stores, counts and logs in one transaction. Its work grows with the trials per participant, not with
the number of earlier participants nor (beyond an index lookup) with the size of the pool: the pool
itself is built once per process (`pool_of`). The log keeps the seed and the candidates with their
fills, which is all `replay` needs. `plan_trials` (a solve over the whole pool with every count) is the
planner of allocations logged before the fill rows; `replay` still reproduces those.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta

from sqlalchemy import and_, bindparam, insert, literal, or_, select, text, union_all, update

from . import fills, leastfilled, memo
from .db import UTCDateTime, db, utcnow
from .design import Design
from .models import AllocationLock, AllocationLog, FillCount, Image, Participant, Study, Transition, Trial
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
    return _arrange(design, chosen, clean, rng)


def _arrange(design: Design, chosen: list[Item], clean: list[Clean], rng: random.Random) -> list[TrialSpec]:
    """The chosen main items in a random order, with clean practice and attention-check digits."""
    cells = design.conditions()
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
    """Main-trial allocations per item, counting finished and recently active participants only.

    The reference rescan of every counted trial: Starts read the maintained rows instead (fills.py),
    which equal this at every Start (tests/study_app/test_app_fill_rows.py)."""
    cutoff = utcnow() - timedelta(minutes=design.timeout_minutes)
    counted = or_(
        Participant.state.in_(FINISHED),
        and_(Participant.state == "in_task", Participant.last_seen_at >= cutoff),
    )
    ImageB = db.aliased(Image)
    rows = db.session.execute(
        select(Trial.participant_id, Image.key, Image.group, Image.stimulus_kind, Image.defense, ImageB.defense)
        .select_from(Trial)
        .join(Participant, Participant.id == Trial.participant_id)
        .join(Image, Image.id == Trial.image_id)
        .outerjoin(ImageB, ImageB.id == Trial.image_b_id)
        .where(Participant.study_id == study.id, Trial.kind == "main", counted,
               Participant.review.notin_(("rejected", "excluded")))
    )
    return dict(Counter(key for _, key in fills.fill_keys(study, rows)))


# PostgreSQL, one statement: rows another transaction holds (a participant acting right now) are
# skipped, never waited for, so concurrent Starts cannot deadlock here; a skipped row is taken next time.
# It returns who moved, from which state, with which review mark: their fills are taken out after.
_TIME_OUT_PG = text(
    "WITH stale AS (SELECT id, state, review FROM participants WHERE study_id = :study AND state IN :active "
    "AND last_seen_at < :cutoff FOR UPDATE SKIP LOCKED), "
    "moved AS (UPDATE participants SET state = 'timed_out' FROM stale WHERE participants.id = stale.id "
    "RETURNING participants.id, stale.state, stale.review), "
    "logged AS (INSERT INTO transitions (participant_id, from_state, to_state, reason, at) "
    "SELECT id, state, 'timed_out', 'no activity', :now FROM moved) "
    "SELECT id, state, review FROM moved"
).bindparams(bindparam("active", expanding=True), bindparam("cutoff", type_=UTCDateTime()),
             bindparam("now", type_=UTCDateTime()))


def time_out_stale(study: Study, design: Design) -> None:
    """Time out the study's inactive sessions in bulk, inside the caller's transaction (the caller
    commits). A constant number of statements however many there are, and run before the allocation
    lock is taken (participant/views.py), so a backlog never holds up other people's Starts. Those who
    counted (in task) stop counting here, in the same transaction: the fill rows then equal the rescan
    that `fill_counts` would make at the Start that follows."""
    cutoff, now = utcnow() - timedelta(minutes=design.timeout_minutes), utcnow()
    if db.session.get_bind().dialect.name == "postgresql":
        moved = db.session.execute(_TIME_OUT_PG, {"study": study.id, "active": list(ACTIVE), "cutoff": cutoff,
                                                  "now": now}).all()
    else:
        # SQLite: the transaction holds the database's one write lock, so all three statements see the
        # same rows.
        stale = and_(Participant.study_id == study.id, Participant.state.in_(ACTIVE),
                     Participant.last_seen_at < cutoff)
        moved = db.session.execute(select(Participant.id, Participant.state, Participant.review).where(stale)).all()
        cols = ["participant_id", "from_state", "to_state", "reason", "at"]
        db.session.execute(insert(Transition).from_select(cols, select(
            Participant.id, Participant.state, literal("timed_out"), literal("no activity"),
            literal(now, UTCDateTime())).where(stale)))
        # last_seen_at kept: it says when they were last here
        db.session.execute(update(Participant).where(stale).values(state="timed_out")
                           .execution_options(synchronize_session=False))
    counted = [pid for pid, state, review in moved if fills.counts_toward_fill(state, review)]
    fills.add(study.id, Counter({k: -n for k, n in fills.keys_of(study, counted).items()}))


def lock_study(study_id: str) -> AllocationLock:
    """Serialize allocations of one study. SQLite: the caller's transaction began IMMEDIATE."""
    stmt = select(AllocationLock).where(AllocationLock.study_id == study_id)
    if db.session.get_bind().dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    lock = db.session.scalar(stmt)
    if lock is None:
        raise AllocationError(f"study {study_id} has no allocation row")
    return lock


@dataclass(frozen=True)
class Pool:
    """What a study can serve, built from its stimulus set and design (both fixed once it runs)."""

    items: dict[str, Item]
    clean: list[Clean]
    image_ids: dict[str, int]


POOLS_KEPT = 16  # studies whose pools a process keeps (warm.py warms no more than this)
_POOLS: memo.OncePerProcess[Pool] = memo.OncePerProcess(keep=POOLS_KEPT)


def pool_of(study: Study) -> Pool:
    """The study's pool, built once per process (it reads every image row of the set, so not per Start).
    Keyed by the database, the study (its random id and creation time: a recreated database never
    reuses them, where it may reuse image ids) and the design text: a changed design gets a new pool."""
    key = (db.engine.url.render_as_string(), study.id, study.created_at,
           hashlib.sha256(study.design_json.encode()).hexdigest())
    return _POOLS.get(key, lambda: _build_pool(study))


def _build_pool(study: Study) -> Pool:
    design = Design.from_dict(study.design)
    images = db.session.execute(select(Image.id, Image.key, Image.kind, Image.source_key, Image.true_label,
                                       Image.target_label, Image.group, Image.defense, Image.success,
                                       Image.stimulus_kind, Image.twin_key)
                                .where(Image.stimulus_set_id == study.stimulus_set_id)).all()
    items, clean = build_pool(design, images)  # rows carry every attribute the pool reads
    return Pool({it.key: it for it in items}, clean, {r.key: r.id for r in images})


def seed_fill_rows(study: Study, design: Design, pool: Pool) -> None:
    """One row per item of the pool, filled from the reference rescan: when the study is created, or
    under its lock at a Start that finds none (migration 0007 seeds running studies with its own copy)."""
    counts = fill_counts(study, design)
    rows = [{"study_id": study.id, "item_key": it.key, "cell": fills.cell_name(it.cell), "source": it.source,
             "rank": fills.item_rank(study.seed, it.key), "n": counts.get(it.key, 0)}
            for it in sorted(pool.items.values(), key=lambda it: it.key)]
    if rows:
        db.session.execute(insert(FillCount), rows)
        if db.session.get_bind().dialect.name == "postgresql":
            # Fresh planner statistics for the rows just added: until autovacuum gets to them (a minute or
            # more), a Start on a large new study runs 3x slower (BENCHMARKS.md, bench_start notes).
            db.session.execute(text("ANALYZE fill_counts"))


def _fetch_least_filled(study: Study, pool: Pool):
    def fetch(wanted: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], list[tuple[Item, int]]]:
        """Each cell's lowest rows by (fill, rank), from the (study, cell, n, rank) index: one statement."""
        names = {fills.cell_name(c): c for c in wanted}
        parts = [select(FillCount.cell, FillCount.item_key, FillCount.n, FillCount.rank)
                 .where(FillCount.study_id == study.id, FillCount.cell == name)
                 .order_by(FillCount.n, FillCount.rank).limit(wanted[c]).subquery()
                 for name, c in names.items()]
        stmt = union_all(*(select(*p.c) for p in parts)) if len(parts) > 1 else select(*parts[0].c)
        ranked: dict[tuple[str, ...], list] = {c: [] for c in wanted}
        for cell, key, n, rank in db.session.execute(stmt):
            if key in pool.items:
                ranked[names[cell]].append((n, rank, pool.items[key]))
        # a union promises no order: sort again, as the index read them
        return {c: [(it, n) for n, _, it in sorted(rows, key=lambda r: r[:2])] for c, rows in ranked.items()}
    return fetch


def plan_least_filled(design: Design, fetch: leastfilled.Fetch, clean: list[Clean], seed: int
                      ) -> tuple[list[TrialSpec], dict[str, int]]:
    """The trial list from the least-filled candidates (`fetch`), and those candidates with their fills
    (what the log keeps). Deterministic in (candidates, clean digits, seed)."""
    cells = design.conditions()
    chosen, offered = leastfilled.choose(cells, design.trials // len(cells), fetch, seed)
    return arrange(design, chosen, clean, seed), offered


def arrange(design: Design, chosen: list[Item], clean: list[Clean], seed: int, attempts: int = 25) -> list[TrialSpec]:
    """Order the chosen items and add the clean trials, drawn from a sample of the clean digits (a
    Start does not shuffle them all); a draw that runs out is retried with derived seeds, the later
    ones from every clean digit."""
    need = len(chosen) + 4 * (design.practice + design.attention_checks) + 20
    error: AllocationError | None = None
    for attempt in range(attempts):
        rng = random.Random(f"{seed}/arrange/{attempt}")
        sample = rng.sample(clean, min(len(clean), need)) if attempt < 3 else clean
        try:
            return _arrange(design, list(chosen), sample, rng)
        except AllocationError as exc:
            error = exc
    assert error is not None
    raise error


def allocate(participant: Participant) -> list[Trial]:
    """Give `participant` its trial sequence. Must run in a fresh transaction (see begin_allocation)."""
    study = participant.study
    design = Design.from_dict(study.design)
    pool = pool_of(study)  # the caller may warm it before taking the lock (prepare_start)
    # Takes the study's lock (the row's) and counts this allocation in one statement; the number before
    # it seeds the plan.
    n_allocated = db.session.execute(
        update(AllocationLock).where(AllocationLock.study_id == study.id)
        .values(n_allocated=AllocationLock.n_allocated + 1).returning(AllocationLock.n_allocated)
        .execution_options(synchronize_session=False)).scalar()
    if n_allocated is None:
        raise AllocationError(f"study {study.id} has no allocation row")
    fetch = _fetch_least_filled(study, pool)

    def fetch_or_seed(wanted):
        got = fetch(wanted)
        if not any(got.values()) and db.session.scalar(
                select(FillCount.n).where(FillCount.study_id == study.id).limit(1)) is None:
            seed_fill_rows(study, design, pool)  # the study's first Start (under its lock)
            got = fetch(wanted)
        return got
    seed = study.seed * 100_003 + n_allocated - 1
    specs, offered = plan_least_filled(design, fetch_or_seed, pool.clean, seed)
    trials = [
        Trial(participant_id=participant.id, index=n, kind=s.kind, image_id=pool.image_ids[s.image],
              image_b_id=pool.image_ids[s.image_b] if s.image_b else None, prompt_label=s.prompt_label,
              expected=s.expected)
        for n, s in enumerate(specs)
    ]
    db.session.add_all(trials)
    if fills.counts_toward_fill("in_task", participant.review):  # a person marked rejected beforehand does not
        fills.add(study.id, Counter(s.item for s in specs if s.kind == "main"))
    db.session.add(AllocationLog(study_id=study.id, participant_id=participant.id, seed=seed,
                                 counts_json=json.dumps({"planner": "least-filled", "candidates": offered},
                                                        sort_keys=True),
                                 plan_json=json.dumps([asdict(s) for s in specs])))
    participant.n_trials = len(trials)
    participant.next_trial_index = 0
    return trials


def prepare_start(study: Study) -> None:
    """Before a Start takes the study's lock: time out stale sessions and warm the pool, so neither
    holds up other people's Starts."""
    time_out_stale(study, Design.from_dict(study.design))
    pool_of(study)


def begin_allocation() -> None:
    """End any open transaction and start one that holds SQLite's write lock from its first statement."""
    db.session.commit()
    db.session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def replay(log: AllocationLog, study: Study) -> list[TrialSpec]:
    """Recompute a logged allocation from its seed and the fills it saw: the candidates it chose among,
    or (allocations logged before the fill rows) every item's count."""
    design = Design.from_dict(study.design)
    images = db.session.scalars(select(Image).where(Image.stimulus_set_id == study.stimulus_set_id)).all()
    items, clean = build_pool(design, images)
    logged = json.loads(log.counts_json)
    if isinstance(logged.get("candidates"), dict):
        by_key = {it.key: it for it in items}
        cells = design.conditions()
        offered = [(by_key[k], n) for k, n in logged["candidates"].items()]
        chosen, _, _ = leastfilled.solve(cells, design.trials // len(cells), offered, log.seed)
        return arrange(design, chosen, clean, log.seed)
    return plan_trials(design, items, clean, logged, log.seed)

