"""deletion guard: held deletions; runs count held deletions and invariant repairs

`sync_held_deletions` keeps, across restarts, the local records a full
listing found missing at the vendor but did not delete because the share
was over SYNC_DELETE_GUARD: one row per record, until an admin applies or
restores them.  `sync_runs.held` and `sync_runs.repaired` count, per run,
the deletions held and the breaks of the sync invariant repaired.

Revision ID: d4e1a9c27b35
Revises: c3d5e7f9a1b2
Create Date: 2026-12-04 17:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'd4e1a9c27b35'
down_revision = 'c3d5e7f9a1b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sync_held_deletions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resource', sa.String(length=16), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.Integer(), nullable=True),
        sa.Column('held_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('resource', 'record_id', name='uq_sync_held_deletions_record'),
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('repaired', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('repaired')
        batch_op.drop_column('held')
    op.drop_table('sync_held_deletions')
