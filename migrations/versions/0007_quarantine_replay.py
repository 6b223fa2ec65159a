"""The quarantine list and replay: each row's cause (its reason without the record's
place in its batch), what a replay made of it, and indexes for the list's filters.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)
# A record's reason starts "record <index in its batch>: " (receiver.intake); the
# cause is the rest, cut at 200 characters (receiver.intake.MAX_CAUSE).
_CAUSE = {
    "postgresql": "regexp_replace(reason, '^record [0-9]+: ', '')",
    "sqlite": "CASE WHEN reason GLOB 'record [0-9]*: *' "
    "THEN substr(reason, instr(reason, ': ') + 2) ELSE reason END",
}
_CUT = "CASE WHEN length({c}) > 200 THEN substr({c}, 1, 199) || '…' ELSE {c} END"


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("cause", sa.Text(), nullable=True))
        batch.add_column(sa.Column("replayed_at", UTC_DATETIME, nullable=True))
        batch.add_column(sa.Column("replay_result", sa.Text(), nullable=True))
    cause = _CAUSE[op.get_bind().dialect.name]
    op.execute(f"UPDATE quarantine SET cause = {_CUT.format(c=cause)}")
    with op.batch_alter_table("quarantine") as batch:
        batch.alter_column("cause", existing_type=sa.Text(), nullable=False)
    op.create_index("ix_quarantine_received_at_id", "quarantine", ["received_at", "id"])
    op.create_index("ix_quarantine_cause", "quarantine", ["cause", "received_at", "id"])
    op.create_index("ix_quarantine_channelkey", "quarantine", ["channelkey", "received_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_channelkey", table_name="quarantine")
    op.drop_index("ix_quarantine_cause", table_name="quarantine")
    op.drop_index("ix_quarantine_received_at_id", table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("replay_result")
        batch.drop_column("replayed_at")
        batch.drop_column("cause")
