"""Retention: every message, event and target row carries its message's UTC day; on
PostgreSQL the event and target tables become partitioned by that day.

On PostgreSQL each of the two tables is rebuilt: the old one is renamed, a table
partitioned by range of ``day`` takes its name (with a default partition and daily
partitions from yesterday to a week ahead), the rows are copied in with their message's
day, every index of the old table is made again on the new one, and the old table goes.
Rows of days without a partition (older ones) are kept in the default partition.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (table, its primary key before this revision, the time a row without a message takes)
TABLES = (
    ("event", ("msgid", "event_key"), "received_at"),
    ("target", ("msgid", "recipient", "sender"), "updated_at"),
)
DAYS_BEHIND, DAYS_AHEAD = 1, 7


def _day(column: str) -> str:
    """SQL: the UTC day (days since 1970-01-01) of a timestamp column."""
    if op.get_bind().dialect.name == "postgresql":
        return f"CAST(floor(extract(epoch FROM {column}) / 86400) AS integer)"
    return f"CAST(strftime('%s', {column}) AS integer) / 86400"


def _message_day(table: str, fallback: str) -> str:
    return (
        f"COALESCE((SELECT message.day FROM message WHERE message.msgid = {table}.msgid),"
        f" {_day(f'{table}.{fallback}')})"
    )


def upgrade() -> None:
    op.add_column("message", sa.Column("day", sa.Integer(), nullable=True))
    op.execute(f"UPDATE message SET day = {_day('created_at')}")
    with op.batch_alter_table("message") as batch:
        batch.alter_column("day", existing_type=sa.Integer(), nullable=False)
    op.create_index("ix_message_day", "message", ["day", "msgid"])
    if op.get_bind().dialect.name == "postgresql":
        for table, key, fallback in TABLES:
            _partition(table, key, fallback)
        return
    for table, key, fallback in TABLES:
        indexes = _plain_indexes(table)
        op.add_column(table, sa.Column("day", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET day = {_message_day(table, fallback)}")
        with op.batch_alter_table(table) as batch:
            batch.alter_column("day", existing_type=sa.Integer(), nullable=False)
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*key, "day"])
        for name, columns in indexes:
            if _with_day(columns) != columns:
                op.drop_index(name, table_name=table)
                op.create_index(name, table, _with_day(columns))


def _plain_indexes(table: str) -> list[tuple[str, list[str]]]:
    """The name and columns of each index of ``table`` but its primary key."""
    return [
        (str(index["name"]), [str(column) for column in index["column_names"]])
        for index in sa.inspect(op.get_bind()).get_indexes(table)
        if not index.get("unique")
    ]


def _partition(table: str, key: tuple[str, ...], fallback: str) -> None:
    """Rebuild ``table`` as a table partitioned by ``day``, rows and indexes included."""
    old = f"{table}_0005"
    indexes = _plain_indexes(table)
    op.rename_table(table, old)
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    for name, _columns in indexes:
        op.drop_index(name, table_name=old)
    key_columns = ", ".join(key)
    op.execute(
        f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS, day integer NOT NULL,"
        f" CONSTRAINT pk_{table} PRIMARY KEY ({key_columns}, day)) PARTITION BY RANGE (day)"
    )
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    today = int(time.time() // 86400)
    for day in range(today - DAYS_BEHIND, today + DAYS_AHEAD + 1):
        name = f"{table}_d{time.strftime('%Y%m%d', time.gmtime(day * 86400))}"
        op.execute(
            f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ({day}) TO ({day + 1})"
        )
    names = [c["name"] for c in sa.inspect(op.get_bind()).get_columns(old)]
    listed = ", ".join(names)
    op.execute(
        f"INSERT INTO {table} ({listed}, day)"
        f" SELECT {listed}, {_message_day(old, fallback)} FROM {old}"
    )
    for name, columns in indexes:
        op.create_index(name, table, _with_day(columns))
    op.drop_table(old)


def _with_day(columns: list[str]) -> list[str]:
    """An index that leads with msgid gets day second: a read naming the message's day
    (to read its partition alone) is still answered from the index."""
    return ["msgid", "day", *columns[1:]] if columns[:1] == ["msgid"] else columns


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, key, _fallback in TABLES:
            _unpartition(table, key)
    else:
        for table, key, _fallback in TABLES:
            for name, columns in _plain_indexes(table):
                if "day" in columns:
                    op.drop_index(name, table_name=table)
                    op.create_index(name, table, [c for c in columns if c != "day"])
            with op.batch_alter_table(table) as batch:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", list(key))
                batch.drop_column("day")
    op.drop_index("ix_message_day", table_name="message")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("day")


def _unpartition(table: str, key: tuple[str, ...]) -> None:
    """Make ``table`` a plain table again, rows and indexes included."""
    old = f"{table}_0006"
    indexes = _plain_indexes(table)
    op.rename_table(table, old)
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    for name, _columns in indexes:
        op.drop_index(name, table_name=old)
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS)")
    op.execute(f"ALTER TABLE {table} DROP COLUMN day")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})")
    names = [c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)]
    listed = ", ".join(names)
    op.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {old}")
    for name, columns in indexes:
        op.create_index(name, table, [c for c in columns if c != "day"])
    op.drop_table(old)  # with its partitions
