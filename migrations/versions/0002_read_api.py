"""Read API: message table, timeline and target-status indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "message",
        sa.Column("msgid", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("channelkey", sa.Text(), nullable=True),
        sa.Column("sendno", sa.Text(), nullable=True),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("request", sa.JSON(), nullable=True),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.Column("send_code", sa.BigInteger(), nullable=True),
        sa.Column("send_message", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("msgid", name=op.f("pk_message")),
    )
    op.create_index("ix_message_created_at_msgid", "message", ["created_at", "msgid"])
    op.create_index("ix_message_sendno", "message", ["sendno"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_message_params",
            "message",
            ["params"],
            postgresql_using="gin",
            postgresql_ops={"params": "jsonb_path_ops"},
        )
    op.create_index(
        "ix_event_timeline", "event", ["msgid", "occurred_at", "received_at", "type", "event_key"]
    )
    op.create_index("ix_target_status", "target", ["msgid", "type", "recipient", "sender"])
    # Messages already heard of through callbacks, with the params they echoed.
    op.execute(
        """
        INSERT INTO message (msgid, provider, channelkey, created_at)
        SELECT msgid, 'ums', MIN(channelkey), MIN(received_at) FROM event GROUP BY msgid
        """
    )
    op.execute(
        """
        UPDATE message SET params = (
            SELECT e.params FROM event e
            WHERE e.msgid = message.msgid AND e.params IS NOT NULL
            LIMIT 1
        )
        """
    )


def downgrade() -> None:
    op.drop_index("ix_target_status", table_name="target")
    op.drop_index("ix_event_timeline", table_name="event")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_message_params", table_name="message")
    op.drop_index("ix_message_sendno", table_name="message")
    op.drop_index("ix_message_created_at_msgid", table_name="message")
    op.drop_table("message")
