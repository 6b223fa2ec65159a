"""Sends: the requests of one send share a send_id and are numbered by part.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("send_id", sa.Text(), nullable=True))
        batch.add_column(sa.Column("part", sa.Integer(), nullable=True))
    op.create_index("ix_message_send_id", "message", ["send_id"])


def downgrade() -> None:
    op.drop_index("ix_message_send_id", table_name="message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("part")
        batch.drop_column("send_id")
