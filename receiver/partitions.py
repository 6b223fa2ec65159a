"""PostgreSQL: the daily partitions of the event and target tables.

Both tables are partitioned by range of ``day``, the UTC day their message was first
stored (days since 1970-01-01): one partition a day, named ``event_d20261126``, and a
``DEFAULT`` partition that takes the rows of any day without one, so that intake never
fails for a missing partition. Partitions are made ahead (the day before today to a week
after) at every migration, at every ``umstrack serve`` start and at every purge; a
partition made for a day the default already holds rows of takes those rows over in the
same transaction. Expiring a day is dropping its partitions: the cost does not depend on
how many rows they hold.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

PARTITIONED = ("event", "target")
DAYS_BEHIND = 1
DAYS_AHEAD = 7
# One advisory lock key for every change of the partitions (any number of processes).
_PARTITIONS_LOCK = 0x756D_7370_6172  # "umspar"
# DDL waits at most this for the table locks (in-flight intake, long reads); waiting
# longer would hold up the writers queued behind it. Tried again a few times.
LOCK_TIMEOUT = "2s"
_EPOCH = date(1970, 1, 1)
_BOUND = re.compile(r"FOR VALUES FROM \((-?\d+)\) TO \((-?\d+)\)")


@dataclass(frozen=True)
class Partition:
    """One daily partition: its table name and the days ``[start, end)`` it holds."""

    name: str
    start: int
    end: int


_PARTITION_NAME = re.compile(rf"({'|'.join(PARTITIONED)})_(d\d{{8}}|default)")


def is_partition(table_name: str) -> bool:
    """Whether a table is one of the partitions made here (not in the models)."""
    return _PARTITION_NAME.fullmatch(table_name) is not None


def today(now: datetime | None = None) -> int:
    """The current UTC day, in days since 1970-01-01."""
    return int((now or datetime.now(UTC)).timestamp() // 86400)


def day_date(day: int) -> date:
    """The calendar date of a day number."""
    return _EPOCH + timedelta(days=day)


def partition_name(table: str, day: int) -> str:
    """``event_d20261126``: the partition of ``table`` for ``day``."""
    return f"{table}_d{day_date(day):%Y%m%d}"


def partitions(conn: Connection, table: str) -> list[Partition]:
    """The range partitions of ``table`` (the default one aside), oldest first."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    )
    found = []
    for name, bound in rows:
        match = _BOUND.fullmatch(bound)
        if match:
            found.append(Partition(name, int(match[1]), int(match[2])))
    return sorted(found, key=lambda p: p.start)


def ensure_partitions(engine: Engine, *, day: int | None = None) -> list[str]:
    """Make the partitions of the day before ``day`` (default today) to a week after
    that do not exist yet; return their names. Nothing on other databases."""
    if engine.dialect.name != "postgresql" or not _partitioned(engine):
        return []
    day = today() if day is None else day
    made = []
    for table in PARTITIONED:
        with engine.connect() as conn:
            existing = partitions(conn, table)
        for wanted in range(day - DAYS_BEHIND, day + DAYS_AHEAD + 1):
            if any(p.start <= wanted < p.end for p in existing):
                continue  # the common case: one read, no transaction a day
            try:
                with engine.begin() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITIONS_LOCK})
                    if any(p.start <= wanted < p.end for p in partitions(conn, table)):
                        continue
                    _make_partition(conn, table, wanted)
            except OperationalError as exc:
                if not _lock_timeout(exc):
                    raise
                # A long read holds the table: the days left go to the default
                # partition meanwhile, and the next run moves them out.
                log.warning("partitions of %s not made: the table was busy", table)
                break
            made.append(partition_name(table, wanted))
    return made


def _lock_timeout(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "55P03"


def _partitioned(engine: Engine) -> bool:
    """Whether the schema has the partitioned tables (it may be older than them)."""
    with engine.connect() as conn:
        found = conn.execute(text("SELECT to_regclass('event_default') IS NOT NULL")).scalar()
    return bool(found)


def _make_partition(conn: Connection, table: str, day: int) -> None:
    """Create ``table``'s partition of ``day``, moving in the rows the default partition
    holds for that day, all in the caller's transaction."""
    name = partition_name(table, day)
    default = f"{table}_default"
    conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
    # Nothing may enter the default between the move and the attach (the attach checks
    # that the default holds no row of the new range). It normally holds nothing, and
    # intake only writes there for days without a partition.
    conn.execute(text(f"LOCK TABLE {default} IN ACCESS EXCLUSIVE MODE"))
    conn.execute(text(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {default} WHERE day = :day RETURNING *)"
            f" INSERT INTO {name} SELECT * FROM moved"
        ),
        {"day": day},
    )
    # Attaching (unlike CREATE TABLE ... PARTITION OF) lets intake keep writing to the
    # other partitions meanwhile; it builds the new partition's indexes.
    conn.execute(
        text(
            f"ALTER TABLE {table} ATTACH PARTITION {name}"
            f" FOR VALUES FROM ({int(day)}) TO ({int(day) + 1})"
        )
    )


def drop_partitions_before(engine: Engine, cutoff: int) -> list[str]:
    """Drop the partitions that hold only days before ``cutoff``; return their names.
    A partition whose table lock could not be had in time is left for the next run."""
    if engine.dialect.name != "postgresql":
        return []
    dropped = []
    for table in PARTITIONED:
        with engine.connect() as conn:
            expired = [p for p in partitions(conn, table) if p.end <= cutoff]
        for partition in expired:
            if _drop(engine, partition.name):
                dropped.append(partition.name)
    return dropped


def _drop(engine: Engine, name: str, attempts: int = 5) -> bool:
    for _ in range(attempts):
        try:
            with engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PARTITIONS_LOCK})
                conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
            return True
        except OperationalError as exc:
            if not _lock_timeout(exc):
                raise
            log.warning("partition %s not dropped yet: its table was busy", name)
    return False
