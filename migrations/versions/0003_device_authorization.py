"""device authorization grant (RFC 8628)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 19:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('device_authorizations',
    sa.Column('device_code_hash', sa.String(length=64), nullable=False),
    sa.Column('user_code_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=255), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('resource', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('interval', sa.Integer(), nullable=False),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('subject', sa.String(length=255), nullable=True),
    sa.Column('organization_id', sa.String(length=128), nullable=True),
    sa.Column('claims', sa.JSON(), nullable=False),
    sa.Column('auth_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('grant_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'],
                            name=op.f('fk_device_authorizations_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('device_code_hash', name=op.f('pk_device_authorizations')),
    sa.UniqueConstraint('user_code_hash', name=op.f('uq_device_authorizations_user_code_hash'))
    )
    with op.batch_alter_table('device_authorizations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_authorizations_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_authorizations_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('device_authorizations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_authorizations_expires_at'))
        batch_op.drop_index(batch_op.f('ix_device_authorizations_client_id'))
    op.drop_table('device_authorizations')
