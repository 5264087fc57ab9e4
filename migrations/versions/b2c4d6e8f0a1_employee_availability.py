"""Employee availability: employees.workdays, employees.max_days_per_week, time_off

`employees.workdays` is a 7-bit mask of the weekdays worked (bit 0 = Monday …
bit 6 = Sunday; 127, all seven, for every existing employee), CHECK 0..127.
`employees.max_days_per_week` is null (no limit) or 1..7.  `time_off` holds
whole local days off, start_date..end_date inclusive.  All local to this app:
never pushed to the vendor.

The columns are added with their CHECK in the column definition (ALTER TABLE
ADD COLUMN on SQLite and PostgreSQL alike), so SQLite's employees table is not
rebuilt on the way up.

Revision ID: b2c4d6e8f0a1
Revises: a9d3e6f1c2b4
Create Date: 2026-12-07 12:30:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'b2c4d6e8f0a1'
down_revision = 'a9d3e6f1c2b4'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('employees', sa.Column(
        'workdays', sa.Integer(),
        sa.CheckConstraint('workdays BETWEEN 0 AND 127', name='ck_employees_workdays'),
        server_default='127', nullable=False))
    op.add_column('employees', sa.Column(
        'max_days_per_week', sa.Integer(),
        sa.CheckConstraint('max_days_per_week BETWEEN 1 AND 7',
                           name='ck_employees_max_days_per_week'),
        nullable=True))
    op.create_table(
        'time_off',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('employee_id', sa.Integer(), nullable=False),
        sa.Column('start_date', sa.Date(), nullable=False),
        sa.Column('end_date', sa.Date(), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('end_date >= start_date', name='ck_time_off_dates'),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_time_off_employee_start', 'time_off', ['employee_id', 'start_date'])


def downgrade():
    op.drop_index('ix_time_off_employee_start', table_name='time_off')
    op.drop_table('time_off')
    # Not batch mode: SQLite's table rebuild would copy the reflected CHECKs that name the
    # dropped columns.  ALTER TABLE DROP COLUMN (SQLite 3.35+) drops a column with its own
    # column-level CHECK, as PostgreSQL does.
    op.drop_column('employees', 'max_days_per_week')
    op.drop_column('employees', 'workdays')
