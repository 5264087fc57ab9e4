"""alerts and alert_notifications: operational alerts and their outbox

Revision ID: c5e7a9b1d3f2
Revises: d7f9b1c3e5a7
Create Date: 2026-12-07 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = 'c5e7a9b1d3f2'
down_revision = 'd7f9b1c3e5a7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'alerts',
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('firing', sa.Boolean(), nullable=False),
        sa.Column('since', sa.DateTime(), nullable=True),
        sa.Column('text', sa.Text(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    op.create_table(
        'alert_notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('alert', sa.String(length=32), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('since', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_notifications_sent_at'), ['sent_at'], unique=False)


def downgrade():
    with op.batch_alter_table('alert_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alert_notifications_sent_at'))
    op.drop_table('alert_notifications')
    op.drop_table('alerts')
