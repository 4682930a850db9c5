"""fill counts: per-study, per-item main-trial fill counts kept as rows (issue 17, item 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:40:00

"""
import collections
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('fill_counts',
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('item_key', sa.String(length=500), nullable=False),
    sa.Column('cell', sa.String(length=500), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_fill_counts_study_id_studies')),
    sa.PrimaryKeyConstraint('study_id', 'item_key', name=op.f('pk_fill_counts'))
    )
    with op.batch_alter_table('fill_counts', schema=None) as batch_op:
        batch_op.create_index('ix_fill_counts_least_filled', ['study_id', 'cell', 'n', 'rank'], unique=False)
    # Running studies: one row per item of the pool, counted by the rescan the app used until then.
    # A frozen copy of that rule as of this revision (below, Core SQL only): a later change to the app
    # must not change, or break, what this revision did. A study that has never allocated anyone is
    # seeded by the app at its first Start.
    _backfill(op.get_bind())


def _backfill(conn):
    studies = sa.table("studies", sa.column("id"), sa.column("seed"), sa.column("stimulus_set_id"),
                       sa.column("design_json"))
    logs = sa.table("allocation_logs", sa.column("study_id"))
    fills = sa.table("fill_counts", *(sa.column(c) for c in ("study_id", "item_key", "cell", "source", "rank", "n")))
    running = conn.execute(sa.select(studies.c.id, studies.c.seed, studies.c.stimulus_set_id, studies.c.design_json)
                           .where(studies.c.id.in_(sa.select(logs.c.study_id)))).all()
    for study_id, seed, set_id, design_json in running:
        design = json.loads(design_json)
        items = _pool(conn, set_id, design)
        counts = _counts(conn, study_id, design)
        rows = [{"study_id": study_id, "item_key": key, "cell": json.dumps(list(cell)), "source": source,
                 "rank": int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:4], "big") >> 1,
                 "n": counts.get(key, 0)} for key, (cell, source) in sorted(items.items())]
        if rows:
            conn.execute(fills.insert(), rows)


_PAIRED_TASKS = ("compare", "explain_pair")  # a trial shows two images of one source digit and kind
_LEGACY_STIMULI = {"kinds": ["adversarial"], "include_failed": False}


def _cell(kind, defenses):
    return tuple(defenses) if kind == "adversarial" else tuple(defenses) + (kind,)


def _pair_key(group, kind, a, b):
    return f"{group}|{a}|{b}" if kind == "adversarial" else f"{group}|{kind}|{a}|{b}"


def _pool(conn, set_id, design):
    """{item key: (cell, source digit)}: the stimuli the design serves, single or paired."""
    images = sa.table("images", *(sa.column(c) for c in ("stimulus_set_id", "key", "kind", "source_key", "group",
                                                          "defense", "success", "stimulus_kind", "twin_key")))
    rows = conn.execute(sa.select(images.c.key, images.c.source_key, images.c.group, images.c.defense,
                                  images.c.success, images.c.stimulus_kind, images.c.twin_key)
                        .where(images.c.stimulus_set_id == set_id, images.c.kind == "stimulus")).all()
    choice = design.get("stimuli", _LEGACY_STIMULI)
    defenses, kinds = design["defenses"], set(choice["kinds"])
    success = {r.key: bool(r.success) for r in rows}

    def kind(r):
        return r.stimulus_kind or "adversarial"

    def succeeded(r):  # a control counts as failed when its adversarial twin failed
        if kind(r) == "adversarial":
            return bool(r.success)
        return success.get(r.twin_key, True) if r.twin_key else True

    served = sorted((r for r in rows if r.defense in defenses and kind(r) in kinds
                     and (choice["include_failed"] or succeeded(r))), key=lambda r: r.key)
    if design["task"] not in _PAIRED_TASKS:
        return {r.key: (_cell(kind(r), (r.defense,)), r.source_key) for r in served}
    cells = {_cell(k, pair) for k in choice["kinds"] for pair in itertools.combinations(defenses, 2)}
    by_group = {}
    for r in served:
        by_group.setdefault((r.group, kind(r)), {})[r.defense] = r
    items = {}
    for (group, k), members in sorted(by_group.items()):
        for a, b in itertools.combinations(defenses, 2):
            if a in members and b in members and _cell(k, (a, b)) in cells:
                items[_pair_key(group, k, a, b)] = (_cell(k, (a, b)), members[a].source_key)
    return items


def _counts(conn, study_id, design):
    """Main trials per item of the participants who count: finished, or in task and seen within the
    design's timeout; none marked rejected or excluded."""
    participants = sa.table("participants", *(sa.column(c) for c in ("id", "study_id", "state", "review")),
                            sa.column("last_seen_at", sa.DateTime(timezone=True)))
    trials = sa.table("trials", *(sa.column(c) for c in ("participant_id", "kind", "image_id", "image_b_id")))
    images = sa.table("images", *(sa.column(c) for c in ("id", "key", "group", "defense", "stimulus_kind")))
    image_b = images.alias("image_b")
    rows = conn.execute(
        sa.select(participants.c.state, participants.c.last_seen_at, images.c.key, images.c.group,
                  images.c.stimulus_kind, images.c.defense, image_b.c.defense)
        .select_from(trials.join(participants, participants.c.id == trials.c.participant_id)
                     .join(images, images.c.id == trials.c.image_id)
                     .outerjoin(image_b, image_b.c.id == trials.c.image_b_id))
        .where(participants.c.study_id == study_id, trials.c.kind == "main",
               participants.c.state.in_(("in_task", "data_complete", "code_issued")),
               participants.c.review.notin_(("rejected", "excluded")))).all()
    cutoff = datetime.now(UTC) - timedelta(minutes=design.get("timeout_minutes", 60))
    order = {d: n for n, d in enumerate(design["defenses"])}
    counts = collections.Counter()
    for state, seen, key, group, kind, defense, defense_b in rows:
        if seen is not None and seen.tzinfo is None:
            seen = seen.replace(tzinfo=UTC)  # SQLite keeps no zone; the app writes UTC
        if state == "in_task" and (seen is None or seen < cutoff):
            continue
        if design["task"] in _PAIRED_TASKS:
            pair = (defense, defense_b) if order.get(defense, 0) <= order.get(defense_b, 0) else (defense_b, defense)
            key = _pair_key(group, kind or "adversarial", *pair)
        counts[key] += 1
    return counts


def downgrade():
    with op.batch_alter_table('fill_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_fill_counts_least_filled')
    op.drop_table('fill_counts')
