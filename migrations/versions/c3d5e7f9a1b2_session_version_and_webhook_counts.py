"""users.session_version (sign-out ends sessions) and webhook_messages.count

`users.session_version` is part of every session's id: signing out or a new
password adds one, so a copied cookie stops working.  `webhook_messages.count`
lets rejected deliveries and repeats be counted in one row per minute and
reason instead of a row each.

Revision ID: c3d5e7f9a1b2
Revises: b7c41f2a9d10
Create Date: 2026-12-04 17:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'c3d5e7f9a1b2'
down_revision = 'b7c41f2a9d10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='0',
                                      nullable=False))
    with op.batch_alter_table('webhook_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('count', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('webhook_messages', schema=None) as batch_op:
        batch_op.drop_column('count')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
