"""What reads cost, shown on SQLite (the statements are the same on PostgreSQL, whose
plans tests/test_query_plans.py checks): hiding a recipient's UMS-level row looks its
channel row up by the primary key, one row, never through every target of the message
(quadratic); statements are compiled once; pages leave the raw records unread."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from receiver import history
from receiver import read as queries
from receiver.bench_read import BROADCAST, READ_CHANNELKEY, broadcast_records
from receiver.db import write_transaction
from receiver.intake import record_batch


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def broadcast(engine: Engine) -> Engine:
    """A 300-recipient broadcast: each recipient's UMS row and its app channel row."""
    records = list(broadcast_records(300, int(datetime.now(UTC).timestamp())))
    with write_transaction(engine) as session:
        record_batch(session=session, channelkey=READ_CHANNELKEY, records=records)
    return engine


@pytest.fixture
def statements(broadcast: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn, _cursor, statement, _params, _context, _many):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(broadcast, "before_cursor_execute", note)
    yield seen
    event.remove(broadcast, "before_cursor_execute", note)


def _lookups(engine: Engine, statement: str) -> list[str]:
    """How each plan of ``statement`` reads channel_target (the looked-up row)."""
    params = [None] * statement.count("?")
    with engine.connect() as conn:
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(params)).all()
    return [row[-1] for row in plan if re.search(r"\bchannel_target\b", row[-1])]


def test_every_read_that_hides_ums_rows_looks_the_channel_row_up_by_key(broadcast, statements):
    with Session(broadcast) as session:
        assert queries.message_summary(session=session, msgid=BROADCAST) is not None
        queries.targets(session=session, msgid=BROADCAST, limit=50)
        queries.list_messages(session=session, status="delivered")
    hiding = [s for s in statements if "channel_target" in s]
    assert len(hiding) >= 8  # counts, funnel, errors, timings, stale, pages, list
    for statement in hiding:
        lookups = _lookups(broadcast, statement)
        assert lookups, statement
        for how in lookups:
            assert "sqlite_autoindex_target_1 (msgid=? AND recipient=?" in how, (how, statement)


def test_a_summary_reads_each_target_a_bounded_number_of_times(broadcast):
    """SQLite's virtual machine steps grow linearly with the recipients, not as their
    square: 300 recipients (599 target rows: one is invalid)."""
    steps: list[int] = []
    with broadcast.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.set_progress_handler(lambda: steps.append(1), 1000)  # every 1,000 steps
        with Session(bind=conn) as session:
            queries.message_summary(session=session, msgid=BROADCAST)
        raw.set_progress_handler(None, 0)
        assert (
            conn.execute(text("SELECT count(*) FROM target")).scalar_one() == 599
        )  # one recipient invalid: its UMS row alone
    # Measured: about 180 (thousand steps) with the key lookup, 3,400 without (and
    # twenty times as many at 1,000 recipients).
    assert len(steps) < 1_000, len(steps)


def test_read_statements_are_compiled_once_and_then_taken_from_the_cache(broadcast, caplog):
    """Every statement of a summary and of a targets page has a cache key: the second
    time, none is compiled again (compiling them all costs milliseconds a request)."""
    for _ in range(2):
        caplog.clear()
        with (
            caplog.at_level(logging.INFO, logger="sqlalchemy.engine"),
            Session(broadcast) as session,
        ):
            queries.message_summary(session=session, msgid=BROADCAST)
            queries.targets(session=session, msgid=BROADCAST, limit=50)
    notes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    compiled = [note for note in notes if not note.startswith("[raw sql]")]
    assert len(compiled) >= 10
    assert all(note.startswith("[cached since") for note in compiled), compiled


def test_event_pages_leave_the_raw_records_unread(broadcast, statements):
    with Session(broadcast) as session:
        page = queries.timeline(session=session, msgid=BROADCAST, limit=20)
        mine = history.recipient_events(session=session, recipient="u7", limit=20)
    assert len(page.items) == 20 and mine.items
    reads = [s for s in statements if "FROM event" in s]
    assert len(reads) >= 2
    for statement in reads:
        assert "event.raw" not in statement and "event.params" in statement, statement


def test_a_page_of_summaries_reads_the_targets_once(broadcast, statements):
    """The counts by status, the funnels and the waiting targets of a list's summaries
    are sums of one grouped read of their targets (they were three reads)."""
    with Session(broadcast) as session:
        listed = queries.list_messages(session=session)
    assert [m.msgid for m in listed.items] == [BROADCAST]
    reads = [s for s in statements if re.search(r"\bFROM target\b", s)]
    assert len(reads) == 1, reads
