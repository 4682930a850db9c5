"""control stimuli and simulated participants: images.stimulus_kind, images.twin_key, participants.simulated

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stimulus_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('twin_key', sa.String(length=200), nullable=True))
    # Every stimulus imported before controls existed was an adversarial image (manifest v1).
    op.execute("UPDATE images SET stimulus_kind = 'adversarial' WHERE kind = 'stimulus'")
    with op.batch_alter_table('participants', schema=None) as batch_op:
        # Existing participants arrived before bots were labelled: recorded as not simulated.
        batch_op.add_column(sa.Column('simulated', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_column('simulated')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_column('twin_key')
        batch_op.drop_column('stimulus_kind')
