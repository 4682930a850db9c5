"""fill counts: per-study, per-item main-trial fill counts kept as rows (issue 17, item 5)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 04:40:00

"""
from alembic import op
import sqlalchemy as sa


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
    # Running studies: one row per item of the pool, counted by the same rescan the app used until now
    # (study_app.allocation.fill_counts). The pool is the app's own definition (eligibility, pairing),
    # so the backfill asks the app; a study that has never allocated is seeded at its first Start.
    from study_app.allocation import backfill_all
    backfill_all(op.get_bind())


def downgrade():
    with op.batch_alter_table('fill_counts', schema=None) as batch_op:
        batch_op.drop_index('ix_fill_counts_least_filled')
    op.drop_table('fill_counts')
