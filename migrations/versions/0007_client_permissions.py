"""client permissions: allowed resources, introspection resources, shared registrations

Revision ID: 0007_client_permissions
Revises: 0006_login_binding
Create Date: 2026-11-26 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_client_permissions'
down_revision = '0006_login_binding'
branch_labels = None
depends_on = None


def upgrade():
    # Existing clients get empty lists: nothing is granted by the upgrade. An
    # operator gives client_credentials clients their resources and resource
    # servers their introspection rights (`clients update --resource/--introspect`).
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_resources', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('introspection_resources', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('registration_shared', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('registration_shared')
        batch_op.drop_column('introspection_resources')
        batch_op.drop_column('allowed_resources')
