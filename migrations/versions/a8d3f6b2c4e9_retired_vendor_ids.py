"""sync_retired_ids: vendor ids known to be deleted there that no record here holds

A record created again after the vendor deleted its object (a PATCH answered
404, or a tombstone the local change won over) gets a new vendor id; its former
id is kept here, as is the id of a tombstone about an object never known here.
A late webhook about such an id (a live version older than the deletion) then
changes nothing instead of creating a record for an object the vendor deleted.

Revision ID: a8d3f6b2c4e9
Revises: f1a7c9e3b5d2
Create Date: 2026-12-05 05:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a8d3f6b2c4e9'
down_revision = 'f1a7c9e3b5d2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sync_retired_ids',
        sa.Column('resource', sa.String(length=16), nullable=False),
        sa.Column('external_id', sa.String(length=64), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=True),
        sa.Column('retired_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('resource', 'external_id'),
    )
    op.create_index('ix_sync_retired_ids_retired_at', 'sync_retired_ids', ['retired_at'])


def downgrade():
    op.drop_index('ix_sync_retired_ids_retired_at', table_name='sync_retired_ids')
    op.drop_table('sync_retired_ids')
