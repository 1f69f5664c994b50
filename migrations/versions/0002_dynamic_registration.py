"""dynamic client registration (RFC 7591 / RFC 7592)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    # Existing clients were all registered by an admin: the server default fills them in.
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('registered_via', sa.String(length=16), server_default='admin', nullable=False))
        batch_op.add_column(sa.Column('application_type', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('registration_access_token_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('registration_source', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('registration_fingerprint', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_clients_registration_dedup'),
                              ['registration_source', 'registration_fingerprint'], unique=False)


def downgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clients_registration_dedup'))
        batch_op.drop_column('last_used_at')
        batch_op.drop_column('registration_fingerprint')
        batch_op.drop_column('registration_source')
        batch_op.drop_column('registration_access_token_hash')
        batch_op.drop_column('application_type')
        batch_op.drop_column('registered_via')
