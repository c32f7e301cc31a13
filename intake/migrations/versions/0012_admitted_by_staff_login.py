"""application_versions.admitted_by: room for ``staff:`` and a whole login

A held version a staff member accepts is admitted ``by="staff:<login>"``, and a login may be 64
characters: ``VARCHAR(64)`` made PostgreSQL refuse the acceptance of anyone whose login is 59 or
longer (``StringDataRightTruncation``). 80 holds the prefix and any login. Widening a ``VARCHAR``
rewrites nothing on PostgreSQL; SQLite (which never enforced the length) copies the table, with
foreign keys off for the migration and checked before it commits (intake/migrations/env.py).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 05:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('application_versions', schema=None) as batch_op:
        batch_op.alter_column('admitted_by', existing_type=sa.String(length=64), type_=sa.String(length=80),
                              existing_nullable=True)


def downgrade() -> None:
    # Refused when a stored value is longer than 64 characters (PostgreSQL): nothing is cut short.
    with op.batch_alter_table('application_versions', schema=None) as batch_op:
        batch_op.alter_column('admitted_by', existing_type=sa.String(length=80), type_=sa.String(length=64),
                              existing_nullable=True)
