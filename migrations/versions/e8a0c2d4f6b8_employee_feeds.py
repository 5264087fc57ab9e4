"""employee_feeds: an employee's private calendar feed (the SHA-256 of its token)

Revision ID: e8a0c2d4f6b8
Revises: c5e7a9b1d3f2
Create Date: 2026-12-07 13:10:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'e8a0c2d4f6b8'
down_revision = 'c5e7a9b1d3f2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'employee_feeds',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('employee_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['employee_id'], ['employees.id'], name='fk_employee_feeds_employee_id'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('employee_id', name='uq_employee_feeds_employee_id'),
        sa.UniqueConstraint('token_hash', name='uq_employee_feeds_token_hash'),
    )


def downgrade():
    op.drop_table('employee_feeds')
