"""the refresh child kept for the grace window; revoked signing keys

Revision ID: 0004_grace_child_key_revoke
Revises: 0003
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_grace_child_key_revoke'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('child_token_encrypted', sa.Text(), nullable=True))
    op.create_index('ix_refresh_tokens_child_kept', 'refresh_tokens', ['used_at'],
                    postgresql_where=sa.text('child_token_encrypted IS NOT NULL'),
                    sqlite_where=sa.text('child_token_encrypted IS NOT NULL'))
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # The schema before this revision knows no revoked state and would publish a
    # revoked (compromised) key again: such keys go.
    op.execute("DELETE FROM signing_keys WHERE state = 'revoked'")
    with op.batch_alter_table('signing_keys', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
    op.drop_index('ix_refresh_tokens_child_kept', table_name='refresh_tokens')
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('child_token_encrypted')
