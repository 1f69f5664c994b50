"""login binding: parked requests bound to their browser, ended member sessions

Revision ID: 0006_login_binding
Revises: 0005_assertion_replay
Create Date: 2026-12-10 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_login_binding'
down_revision = '0005_assertion_replay'
branch_labels = None
depends_on = None


def upgrade():
    # Requests parked before this revision belong to no browser and could never
    # be resumed; they are short-lived, so they go.
    op.execute(sa.text('DELETE FROM pending_authorizations'))
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_hash', sa.String(length=64), nullable=False, server_default=''))
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.alter_column('browser_hash', server_default=None)

    op.create_table('ended_member_sessions',
    sa.Column('session_id_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('session_id_hash', name=op.f('pk_ended_member_sessions'))
    )
    with op.batch_alter_table('ended_member_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ended_member_sessions_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('ended_member_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ended_member_sessions_expires_at'))
    op.drop_table('ended_member_sessions')
    with op.batch_alter_table('pending_authorizations', schema=None) as batch_op:
        batch_op.drop_column('browser_hash')
