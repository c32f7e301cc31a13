"""access log: an index on the subject

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 01:30:00

The auditor's search by 宛名番号 also finds the rows of that person's chains by their subject
(``application:<id>…``, ``version:<id>…``, ``attachment:<id>``), also the rows written before the
chain was linked; the index keeps those exact and prefix lookups off a scan of seven years of rows
(``text_pattern_ops`` on PostgreSQL, for ``LIKE 'application:12:%'``).
"""
from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.create_index('ix_access_log_subject', ['subject'], unique=False,
                              postgresql_ops={'subject': 'text_pattern_ops'})


def downgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_access_log_subject', postgresql_ops={'subject': 'text_pattern_ops'})
