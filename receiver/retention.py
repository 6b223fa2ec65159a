"""Retention: messages whose day is over goes with their events and targets.

A message expires when its day (the UTC day it was first stored, ``message.day``) is
more than ``days`` days before today: with ``days=30``, on 2026-11-26 every message of
2026-10-26 or before. Quarantined input and idempotency keys expire by the same cutoff,
from the time they arrived.

PostgreSQL: the event and target partitions that hold only expired days are dropped
whole (:mod:`receiver.partitions`), whatever their size. What is left (rows of expired
days in the default partition, and the message rows) goes like on SQLite: in bounded
batches, each its own short transaction (on SQLite, one writer turn), so that intake
writers take turns with the purge. A batch locks up to ``batch_messages`` expired
messages (the intake's lock order: messages, then events, then targets), deletes up to
``batch_rows`` of their events and targets, and the messages once none is left: a
broadcast with a million targets takes many batches, never one huge transaction.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Table, delete, func, select, text, tuple_
from sqlalchemy.orm import Session

from .db import write_transaction
from .models import IdempotencyKey
from .partitions import day_date, drop_partitions_before, ensure_partitions, partitions, today
from .store import ACTIVITY, EVENT, KEPT, MESSAGE, QUARANTINE, TARGET

IDEMPOTENCY_KEY: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
BATCH_MESSAGES = 500
BATCH_ROWS = 1000
# After each batch the purge rests for this share of the time the batch took: writers
# waiting meanwhile get their turns (on SQLite, the one writer turn) and CPU.
REST = 1.0
_PURGE_LOCK = 0x756D_7370_7572  # "umspur": one purge at a time


@dataclass
class PurgeResult:
    """What a purge removed (or, dry run, would remove)."""

    cutoff: str  # the first day kept (UTC date)
    dry_run: bool
    messages: int = 0
    events: int = 0
    targets: int = 0
    quarantined: int = 0
    idempotency_keys: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return asdict(self)


def cutoff_day(days: int, now: datetime | None = None) -> int:
    """The first day kept when keeping ``days`` days before today."""
    return today(now) - days


def purge(
    engine: Engine,
    *,
    days: int,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_messages: int = BATCH_MESSAGES,
    batch_rows: int = BATCH_ROWS,
    rest: float = REST,
) -> PurgeResult:
    """Remove the messages more than ``days`` whole days old with their events and
    targets, and the quarantined input and idempotency keys as old; one purge runs at
    a time (a second one waits for the first)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    started = time.perf_counter()
    cutoff = cutoff_day(days, now)
    result = PurgeResult(cutoff=day_date(cutoff).isoformat(), dry_run=dry_run)
    with _one_purge_at_a_time(engine):
        if dry_run:
            _count(engine, cutoff, result)
        else:
            ensure_partitions(engine, day=today(now))
            result.partitions_dropped = drop_partitions_before(engine, cutoff)
            batches = _Batches(engine, batch_rows, rest)
            _delete_messages(batches, cutoff, result, batch_messages)
            since = datetime.combine(day_date(cutoff), datetime.min.time(), UTC)
            result.quarantined = _delete_older(
                batches, QUARANTINE, QUARANTINE.c.id, QUARANTINE.c.received_at, since
            )
            result.idempotency_keys = _delete_older(
                batches, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY.c.key, IDEMPOTENCY_KEY.c.created_at, since
            )
    result.seconds = round(time.perf_counter() - started, 3)
    return result


@dataclass(frozen=True)
class _Batches:
    """Bounded transactions, each followed by a rest (see REST)."""

    engine: Engine
    rows: int
    rest: float

    @contextmanager
    def batch(self) -> Iterator[Session]:
        started = time.perf_counter()
        with write_transaction(self.engine) as session:
            yield session
        time.sleep((time.perf_counter() - started) * self.rest)


def _delete_messages(
    batches: _Batches, cutoff: int, result: PurgeResult, batch_messages: int
) -> None:
    # The oldest first, as the day index gives them; locked in msgid order, the order
    # intake takes them in (FOR KEY SHARE: it waits), so the two never deadlock.
    oldest = (
        select(MESSAGE.c.msgid)
        .where(MESSAGE.c.day < cutoff)
        .order_by(MESSAGE.c.day, MESSAGE.c.msgid)
        .limit(batch_messages)
    )
    expired = (
        select(MESSAGE.c.msgid)
        .where(MESSAGE.c.msgid.in_(oldest), MESSAGE.c.day < cutoff)
        .order_by(MESSAGE.c.msgid)
        .with_for_update()
    )
    while True:
        with batches.batch() as session:
            msgids = list(session.scalars(expired))
            if not msgids:
                return
            budget = batches.rows
            for table, counter in ((EVENT, "events"), (TARGET, "targets")):
                removed = _delete_rows(session, table, msgids, cutoff, budget)
                setattr(result, counter, getattr(result, counter) + removed)
                budget -= removed
                if budget <= 0:
                    break  # maybe more rows: the messages go in a later batch
            else:
                for counts in (ACTIVITY, KEPT):  # a message's activity, its kept summary
                    session.execute(delete(counts).where(counts.c.msgid.in_(msgids)))
                gone = delete(MESSAGE).where(MESSAGE.c.msgid.in_(msgids))
                result.messages += _rowcount(session, gone)


def _delete_rows(session: Session, table: Table, msgids: list[str], cutoff: int, limit: int) -> int:
    """Delete up to ``limit`` rows of ``table`` of these messages (of days before
    ``cutoff``, which on PostgreSQL reads only those days' partitions)."""
    key = tuple_(*table.primary_key.columns)
    some = (
        select(*table.primary_key.columns)
        .where(table.c.msgid.in_(msgids), table.c.day < cutoff)
        .limit(limit)
    )
    # The outer conditions again: PostgreSQL then reads only the expired partitions.
    statement = delete(table).where(table.c.msgid.in_(msgids), table.c.day < cutoff, key.in_(some))
    return _rowcount(session, statement)


def _delete_older(batches: _Batches, table: Table, key: Any, moment: Any, before: datetime) -> int:
    """Delete the rows of ``table`` whose ``moment`` is before ``before``, in batches."""
    total = 0
    while True:
        with batches.batch() as session:
            some = select(key).where(moment < before).limit(batches.rows)
            removed = _rowcount(session, delete(table).where(key.in_(some)))
        total += removed
        if removed < batches.rows:
            return total


def _rowcount(session: Session, statement: Any) -> int:
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def _count(engine: Engine, cutoff: int, result: PurgeResult) -> None:
    since = datetime.combine(day_date(cutoff), datetime.min.time(), UTC)
    with engine.connect() as conn:
        result.messages = _count_of(conn, MESSAGE, MESSAGE.c.day < cutoff)
        result.events = _count_of(conn, EVENT, EVENT.c.day < cutoff)
        result.targets = _count_of(conn, TARGET, TARGET.c.day < cutoff)
        result.quarantined = _count_of(conn, QUARANTINE, QUARANTINE.c.received_at < since)
        result.idempotency_keys = _count_of(
            conn, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY.c.created_at < since
        )
        if engine.dialect.name == "postgresql":
            result.partitions_dropped = [
                p.name
                for table in (EVENT.name, TARGET.name)
                for p in partitions(conn, table)
                if p.end <= cutoff
            ]


def _count_of(conn: Any, table: Table, condition: Any) -> int:
    counted: int = conn.execute(select(func.count()).select_from(table).where(condition)).scalar()
    return counted


@contextmanager
def _one_purge_at_a_time(engine: Engine) -> Iterator[None]:
    """Hold the purge lock: a PostgreSQL advisory lock, or a lock file beside the
    SQLite database; a second purge waits for the first to end."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PURGE_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PURGE_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.purge-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
