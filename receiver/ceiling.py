"""The database's own bulk-load rate into a table shaped like ``event``: the ceiling an
intake benchmark's figures are divided by, measured in the same run (absolute figures
move with a shared machine's load; the ratio to a ceiling measured beside them does not).

PostgreSQL: ``COPY ... FROM STDIN`` of rows formatted beforehand, into a table with
the event table's columns, primary key and indexes (not partitioned: one table is the
most favourable case), in one transaction that is then rolled back. SQLite: one
transaction of ``executemany`` INSERTs into such a table, then dropped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Engine, Index, MetaData, Table, text

from .partitions import today
from .store.statements import EVENT, MILLISECONDS_FROM

CEILING_TABLE = "umstrack_ceiling"


@dataclass(frozen=True)
class Ceiling:
    """How fast the database itself took ``rows`` rows."""

    how: str  # "PostgreSQL COPY" or "SQLite executemany"
    rows: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def event_rows(records: Sequence[dict[str, Any]], *, channelkey: str) -> list[tuple[Any, ...]]:
    """Callback records as the event table's rows (columns in ``EVENT`` order), as the
    intake would store them."""
    received_at = datetime.now(UTC)
    day = today(received_at)
    rows = []
    for record in records:
        raw = json.dumps(record, sort_keys=True)
        sent_time = record.get("sent_time")
        occurred = (
            received_at
            if sent_time is None
            else datetime.fromtimestamp(
                sent_time / 1000 if sent_time >= MILLISECONDS_FROM else sent_time, UTC
            )
        )
        error = record.get("error") or {}
        params = record.get("params")
        values = {
            "msgid": record["msgid"],
            "event_key": hashlib.md5(raw.encode()).hexdigest(),
            "type": record["type"],
            "channelkey": channelkey,
            "userid": record.get("userid") or None,
            "sender_id": record.get("sender_id") or None,
            "sender": record.get("sender"),
            "wechatwk_sender": record.get("wechatwk_sender"),
            "app_platform": None
            if record.get("app_platform") is None
            else str(record["app_platform"]),
            "app_sender": record.get("app_sender"),
            "sent_time": sent_time,
            "occurred_at": occurred,
            "error_code": error.get("code"),
            "error_message": error.get("message"),
            "params": None if params is None else json.dumps(params),
            "raw": raw,
            "received_at": received_at,
            "day": day,
        }
        rows.append(tuple(values[c.name] for c in EVENT.columns))
    return rows


def measure(engine: Engine, rows: Sequence[tuple[Any, ...]]) -> Ceiling:
    """The database's bulk-load rate of ``rows`` (from :func:`event_rows`); the database
    is left as it was."""
    if engine.dialect.name == "postgresql":
        return _postgresql_copy(engine, rows)
    return _sqlite_executemany(engine, rows)


def _ceiling_table() -> Table:
    """A plain table with the event table's columns, primary key and indexes."""
    metadata = MetaData()
    table = Table(CEILING_TABLE, metadata, *(Column(c.name, c.type, primary_key=c.primary_key,
                  nullable=c.nullable) for c in EVENT.columns))  # fmt: skip
    for n, index in enumerate(EVENT.indexes):
        Index(f"{CEILING_TABLE}_{n}", *(table.c[c.name] for c in index.columns))
    return table


def _postgresql_copy(engine: Engine, rows: Sequence[tuple[Any, ...]]) -> Ceiling:
    columns = [c.name for c in EVENT.columns]
    data = "".join("\t".join(_copy_text(v) for v in row) + "\n" for row in rows).encode()
    table = _ceiling_table()
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            table.create(conn)
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            started = time.perf_counter()
            with cursor.copy(f"COPY {CEILING_TABLE} ({', '.join(columns)}) FROM STDIN") as copy:
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start : start + (1 << 20)])
            conn.execute(text("SELECT 1"))  # the COPY is over once the server said so
            seconds = time.perf_counter() - started
        finally:
            transaction.rollback()  # nothing of it stays
    return Ceiling("PostgreSQL COPY", len(rows), seconds)


def _sqlite_executemany(engine: Engine, rows: Sequence[tuple[Any, ...]]) -> Ceiling:
    table = _ceiling_table()
    table.drop(engine, checkfirst=True)
    table.create(engine)
    try:
        placeholders = ", ".join("?" for _ in EVENT.columns)
        values = [tuple(_sqlite_value(v) for v in row) for row in rows]
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            started = time.perf_counter()
            cursor.execute("BEGIN IMMEDIATE")
            cursor.executemany(f"INSERT INTO {CEILING_TABLE} VALUES ({placeholders})", values)
            cursor.execute("COMMIT")
            seconds = time.perf_counter() - started
        finally:
            raw.close()
    finally:
        table.drop(engine)
    return Ceiling("SQLite executemany", len(rows), seconds)


def _copy_text(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.isoformat()
    text_value = str(value)
    return (
        text_value.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


def _sqlite_value(value: Any) -> Any:
    return value.isoformat(" ") if isinstance(value, datetime) else value
