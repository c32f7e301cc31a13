"""attachments: the file name in full

A resident's attachment name is stored whole, however long: the package format sets no length,
the name is what the resident signed and what a business system receives. ``VARCHAR(255)`` made
PostgreSQL refuse a longer one (``StringDataRightTruncation``) and the intake refused the package
to avoid that. On PostgreSQL ``VARCHAR(255)`` → ``TEXT`` is binary-coercible: no table rewrite, no
data touched. SQLite copies the table (batch mode); it never enforced the length anyway.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 04:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.String(length=255), type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    # Refused when a stored name is longer than 255 characters (PostgreSQL): nothing is cut short.
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.alter_column('name', existing_type=sa.Text(), type_=sa.String(length=255), existing_nullable=False)
