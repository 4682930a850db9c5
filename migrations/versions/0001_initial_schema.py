"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:01:40.183661

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():

    op.create_table('admin_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_users')),
    sa.UniqueConstraint('username', name=op.f('uq_admin_users_username'))
    )
    op.create_table('stimulus_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('manifest_json', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stimulus_sets')),
    sa.UniqueConstraint('manifest_sha256', name=op.f('uq_stimulus_sets_manifest_sha256'))
    )
    op.create_table('images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('stimulus_set_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('png', sa.LargeBinary(), nullable=False),
    sa.Column('source_key', sa.String(length=200), nullable=False),
    sa.Column('true_label', sa.Integer(), nullable=False),
    sa.Column('target_label', sa.Integer(), nullable=True),
    sa.Column('group', sa.String(length=200), nullable=True),
    sa.Column('defense', sa.String(length=200), nullable=True),
    sa.Column('success', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['stimulus_set_id'], ['stimulus_sets.id'], name=op.f('fk_images_stimulus_set_id_stimulus_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_images')),
    sa.UniqueConstraint('stimulus_set_id', 'key', name=op.f('uq_images_stimulus_set_id_key'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_stimulus_set_id'), ['stimulus_set_id'], unique=False)

    op.create_table('studies',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('stimulus_set_id', sa.Integer(), nullable=False),
    sa.Column('task_type', sa.String(length=16), nullable=False),
    sa.Column('design_json', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('completion_code', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['stimulus_set_id'], ['stimulus_sets.id'], name=op.f('fk_studies_stimulus_set_id_stimulus_sets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_studies'))
    )
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_studies_stimulus_set_id'), ['stimulus_set_id'], unique=False)

    op.create_table('allocation_locks',
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('n_allocated', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_allocation_locks_study_id_studies')),
    sa.PrimaryKeyConstraint('study_id', name=op.f('pk_allocation_locks'))
    )
    op.create_table('participants',
    sa.Column('id', sa.String(length=24), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('access_token', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('platform_pid', sa.String(length=200), nullable=True),
    sa.Column('platform_json', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('review', sa.String(length=16), nullable=False),
    sa.Column('next_trial_index', sa.Integer(), nullable=False),
    sa.Column('n_trials', sa.Integer(), nullable=False),
    sa.Column('completion_code', sa.String(length=64), nullable=True),
    sa.Column('debrief_json', sa.Text(), nullable=True),
    sa.Column('user_agent', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_participants_study_id_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participants')),
    sa.UniqueConstraint('access_token', name=op.f('uq_participants_access_token')),
    sa.UniqueConstraint('study_id', 'platform', 'platform_pid', name=op.f('uq_participants_study_id_platform_platform_pid'))
    )
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_participants_study_id'), ['study_id'], unique=False)

    op.create_table('study_images',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=43), nullable=False),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_study_images_image_id_images')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_study_images_study_id_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study_images')),
    sa.UniqueConstraint('study_id', 'image_id', name=op.f('uq_study_images_study_id_image_id')),
    sa.UniqueConstraint('token', name=op.f('uq_study_images_token'))
    )
    with op.batch_alter_table('study_images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_images_study_id'), ['study_id'], unique=False)

    op.create_table('allocation_logs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_id', sa.String(length=16), nullable=False),
    sa.Column('participant_id', sa.String(length=24), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('counts_json', sa.Text(), nullable=False),
    sa.Column('plan_json', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_allocation_logs_participant_id_participants')),
    sa.ForeignKeyConstraint(['study_id'], ['studies.id'], name=op.f('fk_allocation_logs_study_id_studies')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocation_logs')),
    sa.UniqueConstraint('participant_id', name=op.f('uq_allocation_logs_participant_id'))
    )
    with op.batch_alter_table('allocation_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocation_logs_study_id'), ['study_id'], unique=False)

    op.create_table('transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.String(length=24), nullable=False),
    sa.Column('from_state', sa.String(length=16), nullable=True),
    sa.Column('to_state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_transitions_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transitions'))
    )
    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transitions_participant_id'), ['participant_id'], unique=False)

    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.String(length=24), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('image_id', sa.Integer(), nullable=False),
    sa.Column('image_b_id', sa.Integer(), nullable=True),
    sa.Column('prompt_label', sa.Integer(), nullable=True),
    sa.Column('expected', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['image_b_id'], ['images.id'], name=op.f('fk_trials_image_b_id_images')),
    sa.ForeignKeyConstraint(['image_id'], ['images.id'], name=op.f('fk_trials_image_id_images')),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_trials_participant_id_participants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('participant_id', 'index', name=op.f('uq_trials_participant_id_index'))
    )
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trials_image_id'), ['image_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_trials_participant_id'), ['participant_id'], unique=False)

    op.create_table('responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('participant_id', sa.String(length=24), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('trial_index', sa.Integer(), nullable=False),
    sa.Column('response', sa.String(length=16), nullable=False),
    sa.Column('rt_ms', sa.Float(), nullable=False),
    sa.Column('shown_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('screen_width', sa.Integer(), nullable=True),
    sa.Column('screen_height', sa.Integer(), nullable=True),
    sa.Column('viewport_width', sa.Integer(), nullable=True),
    sa.Column('viewport_height', sa.Integer(), nullable=True),
    sa.Column('device_pixel_ratio', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_responses_participant_id_participants')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_responses_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_responses')),
    sa.UniqueConstraint('participant_id', 'trial_index', name=op.f('uq_responses_participant_id_trial_index')),
    sa.UniqueConstraint('trial_id', name=op.f('uq_responses_trial_id')),
    sa.UniqueConstraint('uuid', name=op.f('uq_responses_uuid'))
    )
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_responses_participant_id'), ['participant_id'], unique=False)




def downgrade():

    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_responses_participant_id'))

    op.drop_table('responses')
    with op.batch_alter_table('trials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trials_participant_id'))
        batch_op.drop_index(batch_op.f('ix_trials_image_id'))

    op.drop_table('trials')
    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transitions_participant_id'))

    op.drop_table('transitions')
    with op.batch_alter_table('allocation_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocation_logs_study_id'))

    op.drop_table('allocation_logs')
    with op.batch_alter_table('study_images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_images_study_id'))

    op.drop_table('study_images')
    with op.batch_alter_table('participants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_participants_study_id'))

    op.drop_table('participants')
    op.drop_table('allocation_locks')
    with op.batch_alter_table('studies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_studies_stimulus_set_id'))

    op.drop_table('studies')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_stimulus_set_id'))

    op.drop_table('images')
    op.drop_table('stimulus_sets')
    op.drop_table('admin_users')

