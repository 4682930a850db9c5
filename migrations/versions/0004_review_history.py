"""review history: review_events (one row per change of a participant's review mark)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('review_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.String(length=24), nullable=False),
    sa.Column('previous', sa.String(length=16), nullable=False),
    sa.Column('mark', sa.String(length=16), nullable=False),
    sa.Column('by', sa.String(length=100), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_review_events_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_events'))
    )
    with op.batch_alter_table('review_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_events_participant_id'), ['participant_id'], unique=False)
    # Marks set before this revision get one history row each (who set them was not recorded).
    op.execute("INSERT INTO review_events (participant_id, previous, mark, by, note, at) "
               "SELECT id, '', review, '', 'set before review history was kept', last_seen_at "
               "FROM participants WHERE review <> ''")
    # The old pages could leave an excluded participant marked approved or rejected; the excluded state
    # is what every count and the analysis already honoured, so the mark now says the same.
    op.execute("INSERT INTO review_events (participant_id, previous, mark, by, note, at) "
               "SELECT id, review, 'excluded', '', 'mark made to match the excluded state on upgrade', "
               "last_seen_at FROM participants WHERE state = 'excluded' AND review <> 'excluded'")
    op.execute("UPDATE participants SET review = 'excluded' WHERE state = 'excluded' AND review <> 'excluded'")


def downgrade():
    with op.batch_alter_table('review_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_events_participant_id'))
    op.drop_table('review_events')
