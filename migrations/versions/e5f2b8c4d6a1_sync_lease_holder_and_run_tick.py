"""sync lease holder host/pid and the interval run's tick

`sync_leases.holder_host` and `holder_pid` say where the lease holder runs:
a process on the same host that finds that pid gone takes the lease at once
instead of waiting out its TTL.  `sync_runs.tick_at` is the interval tick an
interval run belongs to, unique so that one tick records one run however
many processes serve the app (NULL for manual, CLI, webhook and change runs).

Revision ID: e5f2b8c4d6a1
Revises: d4e1a9c27b35
Create Date: 2026-12-04 17:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = 'e5f2b8c4d6a1'
down_revision = 'd4e1a9c27b35'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_leases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('holder_host', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('holder_pid', sa.Integer(), nullable=True))
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tick_at', sa.DateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_sync_runs_tick_at'), ['tick_at'], unique=True)


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_runs_tick_at'))
        batch_op.drop_column('tick_at')
    with op.batch_alter_table('sync_leases', schema=None) as batch_op:
        batch_op.drop_column('holder_pid')
        batch_op.drop_column('holder_host')
