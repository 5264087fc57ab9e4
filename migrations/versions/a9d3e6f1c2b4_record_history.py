"""record_history: per-record history of employees, events and schedules

One row per change (created, changed, deleted, restored) with its source, actor,
reference and the changed fields' old and new values (history.py).

Revision ID: a9d3e6f1c2b4
Revises: a8d3f6b2c4e9
Create Date: 2026-12-05 05:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'a9d3e6f1c2b4'
down_revision = 'a8d3f6b2c4e9'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'record_history',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resource', sa.String(length=16), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=True),
        sa.Column('ref', sa.String(length=255), nullable=True),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('record_history', schema=None) as batch_op:
        batch_op.create_index('ix_record_history_record', ['resource', 'record_id', 'at'])
        batch_op.create_index(batch_op.f('ix_record_history_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_record_history_ref'), ['ref'], unique=False)


def downgrade():
    with op.batch_alter_table('record_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_history_ref'))
        batch_op.drop_index(batch_op.f('ix_record_history_at'))
        batch_op.drop_index('ix_record_history_record')
    op.drop_table('record_history')
