"""Retention: ``umstrack purge`` removes the messages of expired days with their events
and targets, in bounded batches, while intake goes on; PostgreSQL's daily partitions."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, time
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select, text

from receiver.db import write_transaction
from receiver.intake import quarantine, record_batch
from receiver.partitions import day_date, ensure_partitions, partition_name, partitions, today
from receiver.retention import purge
from receiver.store import ACTIVITY, EVENT, KEPT, MESSAGE, QUARANTINE, TARGET
from tests.cli import invoke
from tests.helpers import CHANNEL, record

TODAY = today()
DAYS = 30


def _noon(day: int) -> datetime:
    return datetime.combine(day_date(day), time(12), UTC)


def _store(engine: Engine, msgid: str, day: int, count: int, start: int = 0) -> None:
    """``count`` delivered events (one target each) of ``msgid``, arriving on ``day``."""
    records = [record(4, msgid=msgid, userid=f"u{i}") for i in range(start, start + count)]
    with write_transaction(engine) as session:
        result = record_batch(
            session=session, channelkey=CHANNEL, records=records, received_at=_noon(day)
        )
    assert result.stored == count


def _counts(engine: Engine, msgid: str) -> tuple[int, int, int]:
    """How many message, event and target rows ``msgid`` has."""
    with engine.connect() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).where(table.c.msgid == msgid)).scalar_one()
            for table in (MESSAGE, EVENT, TARGET)
        )


@pytest.fixture
def aged(engine: Engine) -> Engine:
    """Messages of 40 days ago (in the default partition on PostgreSQL), 31 days ago (in
    its own partition), 30 days ago (the oldest kept with 30 days) and today."""
    ensure_partitions(engine, day=TODAY - 31)  # days -32 to -24 get partitions
    _store(engine, "m-40", TODAY - 40, 5)
    _store(engine, "m-31", TODAY - 31, 4)
    _store(engine, "m-30", TODAY - 30, 3)
    _store(engine, "m-0", TODAY, 2)
    with write_transaction(engine) as session:
        quarantine(
            session=session, channelkey=CHANNEL, items=[("old", "x")], received_at=_noon(TODAY - 31)
        )
        quarantine(
            session=session,
            channelkey=CHANNEL,
            items=[("kept", "y")],
            received_at=_noon(TODAY - 30),
        )
    return engine


def test_purge_removes_expired_messages_with_their_rows_and_keeps_the_rest(aged, backend):
    result = purge(aged, days=DAYS)

    assert _counts(aged, "m-40") == (0, 0, 0)
    assert _counts(aged, "m-31") == (0, 0, 0)
    assert _counts(aged, "m-30") == (1, 3, 3)  # the boundary day is kept
    assert _counts(aged, "m-0") == (1, 2, 2)
    assert result.messages == 2
    assert result.cutoff == day_date(TODAY - 30).isoformat()
    with aged.connect() as conn:
        reasons = set(conn.execute(select(QUARANTINE.c.reason)).scalars())
    assert reasons == {"kept"}
    assert result.quarantined == 1
    if backend == "postgresql":
        # Day -31's rows went with their partitions, day -40's (default) row by row.
        assert partition_name("event", TODAY - 31) in result.partitions_dropped
        assert partition_name("target", TODAY - 32) in result.partitions_dropped
        assert (result.events, result.targets) == (5, 5)
        with aged.connect() as conn:
            left = {p.name for p in partitions(conn, "event")}
        assert partition_name("event", TODAY - 30) in left
        assert partition_name("event", TODAY - 31) not in left
    else:
        assert (result.events, result.targets) == (9, 9)


def test_purge_removes_a_message_s_activity_and_kept_summary(aged):
    with write_transaction(aged) as session:
        session.execute(
            insert(KEPT),
            [
                {"msgid": msgid, "activity": 1, "figures": "{}", "computed_at": _noon(TODAY)}
                for msgid in ("m-40", "m-0")
            ],
        )
    purge(aged, days=DAYS)
    with aged.connect() as conn:
        assert set(conn.execute(select(ACTIVITY.c.msgid)).scalars()) == {"m-30", "m-0"}
        assert set(conn.execute(select(KEPT.c.msgid)).scalars()) == {"m-0"}


def test_purge_twice_removes_nothing_more(aged):
    purge(aged, days=DAYS)
    again = purge(aged, days=DAYS)
    assert (again.messages, again.events, again.targets, again.partitions_dropped) == (0, 0, 0, [])
    assert _counts(aged, "m-30") == (1, 3, 3)


def test_dry_run_counts_and_changes_nothing(aged, backend):
    result = purge(aged, days=DAYS, dry_run=True)

    assert result.dry_run
    assert (result.messages, result.events, result.targets) == (2, 9, 9)
    assert result.quarantined == 1
    assert _counts(aged, "m-40") == (1, 5, 5)
    assert _counts(aged, "m-31") == (1, 4, 4)
    if backend == "postgresql":
        assert partition_name("event", TODAY - 31) in result.partitions_dropped
        with aged.connect() as conn:
            assert partition_name("event", TODAY - 31) in {
                p.name for p in partitions(conn, "event")
            }


def test_a_big_broadcast_goes_in_bounded_batches(engine):
    # One expired message with 600 targets (in the default partition on PostgreSQL:
    # deleted row by row), at most 100 rows a transaction.
    for start in range(0, 600, 200):
        _store(engine, "big", TODAY - 60, 200, start=start)
    deleted: list[int] = []  # rows of each DELETE of targets

    def seen(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("DELETE FROM target"):
            deleted.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", seen)
    try:
        result = purge(engine, days=DAYS, batch_rows=100)
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    assert (result.messages, result.events, result.targets) == (1, 600, 600)
    assert _counts(engine, "big") == (0, 0, 0)
    assert sum(deleted) == 600
    assert max(deleted) <= 100  # each in its own transaction


def test_purge_under_concurrent_intake_loses_no_live_event(engine, backend):
    # A large expired set, purged in small batches while four writers store events of
    # live messages (and one keeps sending callbacks of an expired message).
    for n in range(20):
        _store(engine, f"old-{n}", TODAY - 45 - n % 3, 100)
    errors: list[BaseException] = []
    done = threading.Event()
    stored = {f"live-{w}": 0 for w in range(4)}

    def writer(msgid: str) -> None:
        try:
            batch = 0
            while not done.is_set() or batch < 5:
                _store(engine, msgid, TODAY, 20, start=batch * 20)
                stored[msgid] += 20
                batch += 1
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            errors.append(exc)

    def late_callbacks() -> None:
        try:
            for batch in range(10):
                records = [record(6, msgid="old-0", userid=f"u{batch}")]
                with write_transaction(engine) as session:
                    record_batch(session=session, channelkey=CHANNEL, records=records)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(m,)) for m in stored]
    threads.append(threading.Thread(target=late_callbacks))
    for thread in threads:
        thread.start()
    try:
        result = purge(engine, days=DAYS, batch_messages=3, batch_rows=50)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    assert result.messages >= 19  # old-0 may have come back as a new message of today
    for msgid, count in stored.items():
        assert _counts(engine, msgid) == (1, count, count)
    for n in range(1, 20):
        assert _counts(engine, f"old-{n}") == (0, 0, 0)
    with engine.connect() as conn:
        orphans = conn.execute(
            select(func.count())
            .select_from(EVENT)
            .where(EVENT.c.msgid.not_in(select(MESSAGE.c.msgid)))
        ).scalar_one()
    assert orphans == 0  # no event outlives its message


def test_two_purges_at_once_both_end_cleanly(aged):
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(purge(aged, days=DAYS))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r.messages for r in results) == 2
    assert _counts(aged, "m-30") == (1, 3, 3)


def test_purge_needs_a_day_at_least(engine):
    with pytest.raises(ValueError, match="at least 1"):
        purge(engine, days=0)


# PostgreSQL partitions.


@pytest.fixture
def pg_engine(engine: Engine, backend: str) -> Engine:
    if backend != "postgresql":
        pytest.skip("PostgreSQL partitions")
    return engine


def test_partitions_are_made_ahead_and_a_default_takes_the_rest(pg_engine):
    made = ensure_partitions(pg_engine, day=TODAY + 100)
    assert partition_name("event", TODAY + 99) in made
    assert partition_name("target", TODAY + 107) in made
    assert ensure_partitions(pg_engine, day=TODAY + 100) == []  # once only
    with pg_engine.connect() as conn:
        days = {(p.start, p.end) for p in partitions(conn, "event")}
        default = conn.execute(
            text("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'event_default'::regclass")
        ).scalar_one()
    assert {(d, d + 1) for d in range(TODAY - 1, TODAY + 8)} <= days  # made at migrate
    assert default == 1


def test_a_partition_made_for_a_day_the_default_holds_takes_its_rows(pg_engine):
    day = TODAY - 200  # no partition: intake stores in the default
    _store(pg_engine, "early", day, 3)
    with pg_engine.connect() as conn:
        in_default = conn.execute(text("SELECT count(*) FROM event_default")).scalar_one()
    assert in_default == 3

    ensure_partitions(pg_engine, day=day)

    with pg_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM event_default")).scalar_one() == 0
        assert (
            conn.execute(text(f"SELECT count(*) FROM {partition_name('event', day)}")).scalar_one()
            == 3
        )
        assert (
            conn.execute(text(f"SELECT count(*) FROM {partition_name('target', day)}")).scalar_one()
            == 3
        )
    _store(pg_engine, "early", day, 2, start=3)  # intake goes on into the partition
    assert _counts(pg_engine, "early") == (1, 5, 5)


def test_intake_keeps_an_event_under_its_message_day(engine):
    _store(engine, "kept-day", TODAY - 3, 1)
    _store(engine, "kept-day", TODAY, 1, start=1)  # a later callback of the same message
    with engine.connect() as conn:
        days = set(conn.execute(select(EVENT.c.day).where(EVENT.c.msgid == "kept-day")).scalars())
        target_days = set(
            conn.execute(select(TARGET.c.day).where(TARGET.c.msgid == "kept-day")).scalars()
        )
    assert days == target_days == {TODAY - 3}


# The command.


def test_purge_command_without_retention_days_fails_in_one_line(database_url):
    result = invoke("purge", env={"DATABASE_URL": database_url, "RETENTION_DAYS": None})
    assert result.exit_code == 2
    assert result.stderr == "umstrack: nothing to purge by: set RETENTION_DAYS or give --days\n"


def test_purge_command_prints_what_went(aged, database_url):
    result = invoke("purge", env={"DATABASE_URL": database_url, "RETENTION_DAYS": "30"})
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["messages"] == 2
    assert set(summary) >= {"messages", "events", "targets", "partitions_dropped", "seconds"}
    assert _counts(aged, "m-31") == (0, 0, 0)


def test_purge_command_dry_run_changes_nothing(aged, database_url):
    result = invoke("purge", "--days", "30", "--dry-run", env={"DATABASE_URL": database_url})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["messages"] == 2
    assert _counts(aged, "m-31") == (1, 4, 4)


def test_purge_command_days_override(aged, database_url):
    result = invoke(
        "purge", "--days", "35", env={"DATABASE_URL": database_url, "RETENTION_DAYS": "1"}
    )
    assert result.exit_code == 0, result.stderr
    assert _counts(aged, "m-40") == (0, 0, 0)
    assert _counts(aged, "m-31") == (1, 4, 4)
    assert _counts(aged, "m-0") == (1, 2, 2)


def test_reads_of_one_message_plan_its_day_partition_alone(pg_engine):
    from sqlmodel import Session

    from receiver import read

    ensure_partitions(pg_engine, day=TODAY - 5)
    _store(pg_engine, "five-days-ago", TODAY - 5, 2)
    _store(pg_engine, "today", TODAY, 2)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(pg_engine, "before_cursor_execute", capture)
    try:
        with Session(pg_engine) as session:
            read.timeline(session=session, msgid="five-days-ago")
            read.targets(session=session, msgid="five-days-ago")
            read.message_summary(session=session, msgid="five-days-ago")
    finally:
        event.remove(pg_engine, "before_cursor_execute", capture)
    read_partitions = set()
    with pg_engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()
        for statement, parameters in seen:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            read_partitions |= set(_relations(cursor.fetchone()[0][0]["Plan"]))
    partitioned = {name for name in read_partitions if name.startswith(("event_", "target_"))}
    assert partitioned == {partition_name("event", TODAY - 5), partition_name("target", TODAY - 5)}


def _relations(plan: dict[str, Any]) -> list[str]:
    found = [plan["Relation Name"]] if "Relation Name" in plan else []
    for child in plan.get("Plans", []):
        found += _relations(child)
    return found


def test_a_busy_default_partition_delays_new_partitions_without_failing(pg_engine):
    # A long read of the default partition: making a partition waits LOCK_TIMEOUT, then
    # gives up on that table until the next run; the other table gets its partitions.
    with pg_engine.connect() as reader:
        reader.execute(text("LOCK TABLE event_default IN ACCESS SHARE MODE"))
        made = ensure_partitions(pg_engine, day=TODAY + 300)
        reader.rollback()
    assert not any(name.startswith("event_") for name in made)
    assert partition_name("target", TODAY + 300) in made
    assert partition_name("event", TODAY + 300) in ensure_partitions(pg_engine, day=TODAY + 300)
