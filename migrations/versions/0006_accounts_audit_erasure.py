"""accounts and audit: study_members (owner/collaborator/viewer), admin_users.is_site_admin, audit_events

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-02 04:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        # Existing accounts could do everything before roles existed: they stay site admins.
        batch_op.add_column(sa.Column('is_site_admin', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_table('study_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_study_members_study_id_studies')),
    sa.ForeignKeyConstraint(['user_id'], ['admin_users.id'], name=op.f('fk_study_members_user_id_admin_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_members')),
    sa.UniqueConstraint('study_id', 'user_id', name=op.f('uq_study_members_study_id_user_id'))
    )
    with op.batch_alter_table('study_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_members_study_id'), ['study_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_members_user_id'), ['user_id'], unique=False)
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_study_id'), ['study_id'], unique=False)


def downgrade():
    with op.batch_alter_table('study_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_members_user_id'))
        batch_op.drop_index(batch_op.f('ix_study_members_study_id'))
    op.drop_table('study_members')
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_column('is_site_admin')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_study_id'))
    op.drop_table('audit_events')
