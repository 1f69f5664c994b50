"""used client assertions: the jti replay memory shared by every node (RFC 7523 §3)

Revision ID: 0005_assertion_replay
Revises: 0004_grace_child_key_revoke
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_assertion_replay'
down_revision = '0004_grace_child_key_revoke'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('used_client_assertions',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_used_client_assertions'))
    )
    with op.batch_alter_table('used_client_assertions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_client_assertions_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('used_client_assertions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_client_assertions_expires_at'))
    op.drop_table('used_client_assertions')
