"""access log keys, My Numbers from the manifest, four eyes

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 09:00:00

Issue 15: ``access_log.key_id`` (the HMAC key of each row; existing rows stay unkeyed, accepted up
to ``access_log_unkeyed_through``); ``my_numbers.source`` (``form`` or ``kousei``: My Numbers from
the manifest's 申請者情報 are sealed too); ``staff_change_requests`` and ``staff_users.password_set_by``
/ ``totp_set_by`` (four eyes for privileged account changes).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import intake.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('my_numbers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=8), server_default='form', nullable=False))
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_set_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('totp_set_by', sa.String(length=64), nullable=True))
    op.create_table('staff_change_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('target_user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('requested_by', sa.String(length=64), nullable=False),
    sa.Column('requested_at', intake.db.UTCDateTime(), nullable=False),
    sa.Column('expires_at', intake.db.UTCDateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', intake.db.UTCDateTime(), nullable=True),
    sa.Column('decision_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['target_user_id'], ['staff_users.id'],
                            name=op.f('fk_staff_change_requests_target_user_id_staff_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_change_requests'))
    )
    with op.batch_alter_table('staff_change_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_change_requests_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_change_requests_target_user_id'), ['target_user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff_change_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_change_requests_target_user_id'))
        batch_op.drop_index(batch_op.f('ix_staff_change_requests_state'))
    op.drop_table('staff_change_requests')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('totp_set_by')
        batch_op.drop_column('password_set_by')
    with op.batch_alter_table('my_numbers', schema=None) as batch_op:
        batch_op.drop_column('source')
    with op.batch_alter_table('access_log', schema=None) as batch_op:
        batch_op.drop_column('key_id')
