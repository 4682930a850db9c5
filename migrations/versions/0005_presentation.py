"""presentation protocol: per-response timing, confidence and vigilance columns (issue 12 items 3-5)

Revision ID: 0005_presentation
Revises: 0004
Create Date: 2026-12-02 04:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005_presentation'
down_revision = '0004'
branch_labels = None
depends_on = None

# All nullable: answers stored before this revision have no measurements, and they stay empty.
COLUMNS = [
    ('refresh_hz', sa.Float()),
    ('exposure_ms_requested', sa.Integer()),
    ('exposure_ms_measured', sa.Float()),
    ('mask_ms_measured', sa.Float()),
    ('dropped_frames', sa.Integer()),
    ('response_timed_out', sa.Boolean()),
    ('confidence', sa.Integer()),
    ('focus_lost', sa.Boolean()),
    ('fullscreen_exits', sa.Integer()),
]


def upgrade():
    with op.batch_alter_table('responses', schema=None) as batch_op:
        for name, typ in COLUMNS:
            batch_op.add_column(sa.Column(name, typ, nullable=True))


def downgrade():
    with op.batch_alter_table('responses', schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
