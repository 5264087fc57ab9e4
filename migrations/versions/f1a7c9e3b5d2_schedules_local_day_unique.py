"""schedules.local_day and one live schedule per employee per local day

Adds `schedules.local_day` (the schedule's calendar day in APP_TIMEZONE, kept by
the model), fills it, and adds the partial unique index
uq_schedules_employee_day_live on (employee_id, local_day) WHERE deleted_at IS
NULL, so that two requests racing for an employee's day cannot both win.

Existing data that already breaks the rule is refused before anything changes,
with the clashes named (employee, day, schedule ids).  After changing
APP_TIMEZONE run `flask --app app schedules recompute-days` (the same code).

Revision ID: f1a7c9e3b5d2
Revises: e5f2b8c4d6a1
Create Date: 2026-12-04 16:45:00

"""
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op
from flask import current_app

from local_days import INDEX_NAME, LIVE, DayClashError, fill_local_days, find_clashes

revision = 'f1a7c9e3b5d2'
down_revision = 'e5f2b8c4d6a1'
branch_labels = None
depends_on = None


def upgrade():
    tz = ZoneInfo(current_app.config.get("APP_TIMEZONE") or "UTC")
    conn = op.get_bind()
    clashes = find_clashes(conn, tz)  # before any change: SQLite cannot roll back DDL here
    if clashes:
        raise DayClashError(clashes, tz)
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('local_day', sa.Date(), nullable=True))
    fill_local_days(conn, tz)
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.alter_column('local_day', existing_type=sa.Date(), nullable=False)
        batch_op.create_index(INDEX_NAME, ['employee_id', 'local_day'], unique=True,
                              sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade():
    with op.batch_alter_table('schedules', schema=None) as batch_op:
        batch_op.drop_index(INDEX_NAME, sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
        batch_op.drop_column('local_day')
