"""accounts, audit and locked studies: studies.design_sha256/parent_study_id/version, study_members (owner/collaborator/viewer), admin_users.is_site_admin, audit_events

Revision ID: 0006
Revises: 0005_presentation
Create Date: 2026-12-02 04:20:00

"""
import hashlib
import json

import sqlalchemy as sa
from alembic import op


def design_hash(design: dict) -> str:
    # A copy of study_app.studies.design_hash as it is at this revision (migrations never import app code).
    return hashlib.sha256(json.dumps(design, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005_presentation'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('design_sha256', sa.String(length=64), server_default='', nullable=False))
        batch_op.add_column(sa.Column('parent_study_id', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.create_foreign_key(batch_op.f('fk_studies_parent_study_id_studies'), 'studies',
                                    ['parent_study_id'], ['id'])
    # Existing studies get the hash of the design they were created with (the same canonical form).
    conn = op.get_bind()
    for study_id, design_json in conn.execute(sa.text("SELECT id, design_json FROM studies")).all():
        conn.execute(sa.text("UPDATE studies SET design_sha256 = :h WHERE id = :i"),
                     {"h": design_hash(json.loads(design_json)), "i": study_id})
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
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_studies_parent_study_id_studies'), type_='foreignkey')
        batch_op.drop_column('version')
        batch_op.drop_column('parent_study_id')
        batch_op.drop_column('design_sha256')
    with op.batch_alter_table('study_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_members_user_id'))
        batch_op.drop_index(batch_op.f('ix_study_members_study_id'))
    op.drop_table('study_members')
    with op.batch_alter_table('admin_users', schema=None) as batch_op:
        batch_op.drop_column('is_site_admin')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_study_id'))
    op.drop_table('audit_events')
