"""Sends recorded before they leave, withdraws, idempotency keys, WeCom targets.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("send_state", sa.Text(), nullable=True))
        batch.add_column(sa.Column("send_deadline", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("withdraw_state", sa.Text(), nullable=True))
        batch.add_column(sa.Column("withdraw_requested_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("withdraw_deadline", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("withdraw_answered_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("withdraw_code", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("withdraw_message", sa.Text(), nullable=True))
    # Sends recorded before this revision: their state from the answer they kept.
    op.execute(
        """
        UPDATE message SET send_state = CASE
            WHEN send_code = 0 THEN 'sent'
            WHEN send_code IS NOT NULL THEN 'refused'
            WHEN send_message LIKE 'outcome unknown%' THEN 'unknown'
            ELSE 'not_sent' END
        WHERE send_code IS NOT NULL OR send_message IS NOT NULL
        """
    )
    with op.batch_alter_table("target") as batch:
        batch.add_column(sa.Column("wechatwk_sender", sa.SmallInteger(), nullable=True))
    op.execute(
        """
        UPDATE target SET wechatwk_sender = (
            SELECT MAX(event.wechatwk_sender) FROM event
            WHERE event.msgid = target.msgid AND event.sender = target.sender
              AND COALESCE(event.userid, event.sender_id) = target.recipient)
        WHERE sender = 9
        """
    )
    op.create_table(
        "idempotency_key",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("body_digest", sa.Text(), nullable=False),
        sa.Column("send_id", sa.Text(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("answered_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_key")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    with op.batch_alter_table("target") as batch:
        batch.drop_column("wechatwk_sender")
    with op.batch_alter_table("message") as batch:
        for column in (
            "withdraw_message",
            "withdraw_code",
            "withdraw_answered_at",
            "withdraw_deadline",
            "withdraw_requested_at",
            "withdraw_state",
            "send_deadline",
            "send_state",
        ):
            batch.drop_column(column)
