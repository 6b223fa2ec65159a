"""Intake tables: event, target, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Every event and target key starts with msgid: both tables can later be
    # partitioned or distributed by message.
    op.create_table(
        "event",
        sa.Column("msgid", sa.Text(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("channelkey", sa.Text(), nullable=False),
        sa.Column("userid", sa.Text(), nullable=True),
        sa.Column("sender_id", sa.Text(), nullable=True),
        sa.Column("sender", sa.SmallInteger(), nullable=True),
        sa.Column("wechatwk_sender", sa.SmallInteger(), nullable=True),
        sa.Column("app_platform", sa.Text(), nullable=True),
        sa.Column("app_sender", sa.SmallInteger(), nullable=True),
        sa.Column("sent_time", sa.BigInteger(), nullable=True),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("error_code", sa.BigInteger(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("msgid", "event_key", name=op.f("pk_event")),
    )
    op.create_table(
        "target",
        sa.Column("msgid", sa.Text(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("sender", sa.SmallInteger(), nullable=False),
        sa.Column("userid", sa.Text(), nullable=True),
        sa.Column("sender_id", sa.Text(), nullable=True),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("reached_at", UTC_DATETIME, nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("msgid", "recipient", "sender", name=op.f("pk_target")),
    )
    op.create_table(
        "quarantine",
        # SQLite only auto-increments a column declared INTEGER PRIMARY KEY.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("quarantine_key", sa.Text(), nullable=False),
        sa.Column("channelkey", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint("quarantine_key", name=op.f("uq_quarantine_quarantine_key")),
    )


def downgrade() -> None:
    op.drop_table("quarantine")
    op.drop_table("target")
    op.drop_table("event")
