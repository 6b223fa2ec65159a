"""Kept summaries (receiver.kept): each message's activity, and big messages' figures.
PostgreSQL: the store function (its body as function_body() builds it at this
revision; tests check the newest revision's) also counts each batch's activity.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# The body of revision 0008's function with one change: after the targets are merged,
# each message with new events counts one more batch in this session's slot.
_MERGED = """
      target.withdrawal_error_message END RETURNING 1)
"""
_MERGED_AND_BUMPED = """
      target.withdrawal_error_message END RETURNING 1),
    bumped AS
    (INSERT INTO message_activity (msgid, slot, batches) SELECT DISTINCT "new".msgid AS
      msgid, CAST(mod(pg_backend_pid(), 64) AS SMALLINT) AS mod_1, 1
    FROM "new" ORDER BY "new".msgid ON CONFLICT (msgid, slot) DO UPDATE SET batches =
      (message_activity.batches + 1) RETURNING 1)
"""


def _earlier() -> Any:
    """Revision 0008's module (its frozen function body, signature and result)."""
    path = Path(__file__).with_name("0008_store_function.py")
    spec = importlib.util.spec_from_file_location("umstrack_migration_0008", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_EARLIER = _earlier()
SIGNATURE: str = _EARLIER.SIGNATURE
RESULT: str = _EARLIER.RESULT
EARLIER_BODY: str = _EARLIER.BODY
assert EARLIER_BODY.count(_MERGED) == 1
BODY = EARLIER_BODY.replace(_MERGED, _MERGED_AND_BUMPED)


def _create_function(body: str) -> None:
    # Through the driver as it is: no bind parameters looked for in the body.
    op.get_bind().exec_driver_sql(
        f"CREATE OR REPLACE FUNCTION {SIGNATURE}\n RETURNS TABLE ({RESULT})\n"
        f" LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan"
        f" AS $store${body}$store$"
    )


def upgrade() -> None:
    op.create_table(
        "message_activity",
        sa.Column("msgid", sa.Text(), primary_key=True),
        sa.Column("slot", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("batches", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "kept_summary",
        sa.Column("msgid", sa.Text(), primary_key=True),
        sa.Column("activity", sa.BigInteger(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        _create_function(BODY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _create_function(EARLIER_BODY)  # the function as revision 0008 made it
    op.drop_table("kept_summary")
    op.drop_table("message_activity")
