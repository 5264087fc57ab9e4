"""drop the single-column deleted_at indexes

Nearly every row has deleted_at NULL, yet without statistics SQLite takes
`deleted_at IS NULL` on an index as selective and prefers it to the real
index of a query (e.g. schedules by event_id IN (...)), scanning the table:
pyinstrument showed a pull page's link look-ups at 8-17 ms on 20k rows
instead of 0.3 ms.  The partial unique indexes (WHERE deleted_at IS NULL)
stay; soft-deleted rows are found through sync_status.

Revision ID: b7c41f2a9d10
Revises: 45e06fb40d07
Create Date: 2026-11-25 13:25:00

"""
from alembic import op


revision = 'b7c41f2a9d10'
down_revision = '45e06fb40d07'
branch_labels = None
depends_on = None

TABLES = ("employees", "events", "schedules")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_deleted_at'))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(batch_op.f(f'ix_{table}_deleted_at'), ['deleted_at'], unique=False)
