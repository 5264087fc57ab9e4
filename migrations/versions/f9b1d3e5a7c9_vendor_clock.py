"""vendor_clock: the vendor's latest measured clock offset, shared by every process

Revision ID: f9b1d3e5a7c9
Revises: e8a0c2d4f6b8
Create Date: 2026-12-07 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'f9b1d3e5a7c9'
down_revision = 'e8a0c2d4f6b8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'vendor_clock',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('offset_s', sa.Float(), nullable=False),
        sa.Column('lower_s', sa.Float(), nullable=True),
        sa.Column('upper_s', sa.Float(), nullable=True),
        sa.Column('measured_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade():
    op.drop_table('vendor_clock')
