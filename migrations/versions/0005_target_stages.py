"""Each target keeps every stage's outcome; a recipient's events are found by index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
# (stage, its success type, its failure type or None)
STAGES = (
    ("validation", 0, 1),
    ("submission", 2, 3),
    ("delivery", 4, 5),
    ("engagement", 6, None),
    ("withdrawal", 7, 8),
)
_SAME_TARGET = (
    "event.msgid = target.msgid AND COALESCE(event.userid, event.sender_id) = target.recipient"
    " AND COALESCE(event.sender, -1) = target.sender"
)


def upgrade() -> None:
    with op.batch_alter_table("target") as batch:
        for stage, _ok, failure in STAGES:
            batch.add_column(sa.Column(f"{stage}_type", sa.SmallInteger(), nullable=True))
            batch.add_column(sa.Column(f"{stage}_at", UTC_DATETIME, nullable=True))
            if failure is not None:
                batch.add_column(sa.Column(f"{stage}_error_code", sa.BigInteger(), nullable=True))
                batch.add_column(sa.Column(f"{stage}_error_message", sa.Text(), nullable=True))
    # Targets stored before this revision: each stage from their events, by the rule
    # (a success beats a failure; the earliest time of the status reached).
    for stage, ok, failure in STAGES:
        types = f"({ok})" if failure is None else f"({ok}, {failure})"
        best = f"(SELECT MIN(event.type) FROM event WHERE {_SAME_TARGET} AND event.type IN {types})"
        op.execute(f"UPDATE target SET {stage}_type = {best}")
        op.execute(
            f"UPDATE target SET {stage}_at = (SELECT MIN(event.occurred_at) FROM event "
            f"WHERE {_SAME_TARGET} AND event.type = target.{stage}_type) "
            f"WHERE {stage}_type IS NOT NULL"
        )
        if failure is not None:
            for column in ("error_code", "error_message"):
                op.execute(
                    f"UPDATE target SET {stage}_{column} = (SELECT event.{column} FROM event "
                    f"WHERE {_SAME_TARGET} AND event.type = {failure} "
                    f"ORDER BY event.occurred_at LIMIT 1) WHERE {stage}_type = {failure}"
                )
    op.create_index("ix_event_userid", "event", ["userid", "occurred_at"])
    op.create_index("ix_event_sender_id", "event", ["sender_id", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_event_sender_id", table_name="event")
    op.drop_index("ix_event_userid", table_name="event")
    with op.batch_alter_table("target") as batch:
        for stage, _ok, failure in reversed(STAGES):
            if failure is not None:
                batch.drop_column(f"{stage}_error_message")
                batch.drop_column(f"{stage}_error_code")
            batch.drop_column(f"{stage}_at")
            batch.drop_column(f"{stage}_type")
