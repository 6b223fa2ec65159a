"""PostgreSQL plans: reading one message never scans the event or target table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session

from receiver import history
from receiver import read as queries
from receiver.stale import stale_targets
from tests.conftest import TEST_DATABASE_URL

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL plans")

MESSAGES = 2_000
EVENTS_PER_MESSAGE = 100


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def big_engine(engine: Engine) -> Engine:
    """250,000 events and 150,000 targets over 2,000 messages (one of them with
    50,000 events), 100,000 more messages without events; analyzed."""
    sizes = {"messages": MESSAGES, "per_message": EVENTS_PER_MESSAGE}
    with engine.begin() as conn:
        for statement in _FILL.split(";"):
            if statement.strip():
                conn.execute(text(statement), sizes)
    # What autovacuum does on a live database: statistics and the visibility map.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE message, event, target"))
    return engine


_FILL = """
    INSERT INTO message (msgid, provider, channelkey, params, created_at, day)
    SELECT 'v:1t:1700000000p:' || m || 'n:1', 'ums', 'ch',
           jsonb_build_object('order_id', m::text), now() - m * interval '1 s',
           CAST(floor(extract(epoch FROM now()) / 86400) AS integer)
    FROM generate_series(1, :messages) m;
    INSERT INTO event (msgid, event_key, type, channelkey, userid, sender,
                       sent_time, occurred_at, raw, received_at, day)
    SELECT 'v:1t:1700000000p:' || m || 'n:1', md5(m || '-' || e), e % 9, 'ch',
           'user' || (e % 75), 1, 1700000000 + e,
           to_timestamp(1700000000 + e), '{}', now(),
           CAST(floor(extract(epoch FROM now()) / 86400) AS integer)
    FROM generate_series(1, :messages) m, generate_series(1, :per_message) e;
    INSERT INTO target (msgid, recipient, sender, userid, type, rank,
                        reached_at, event_count, updated_at, day)
    SELECT 'v:1t:1700000000p:' || m || 'n:1', 'user' || u, 1, 'user' || u,
           4, 5, now(), 1, now(),
           CAST(floor(extract(epoch FROM now()) / 86400) AS integer)
    FROM generate_series(1, :messages) m, generate_series(1, 75) u;
-- One big broadcast among them: its timeline pages must not sort all its events.
INSERT INTO event (msgid, event_key, type, channelkey, userid, sender,
                   sent_time, occurred_at, raw, received_at, day)
SELECT 'v:1t:1700000000p:1234n:1', md5('big-' || e), e % 9, 'ch', 'fan' || e, 1,
       1700000000 + e / 10, to_timestamp(1700000000 + e / 10), '{}', now(),
       CAST(floor(extract(epoch FROM now()) / 86400) AS integer)
FROM generate_series(1, 50000) e;
-- Many more messages heard of without events: the list must not scan them all.
INSERT INTO message (msgid, provider, channelkey, params, created_at, day)
SELECT 'quiet-' || m, 'ums', 'ch', jsonb_build_object('order_id', m::text), now(),
       CAST(floor(extract(epoch FROM now()) / 86400) AS integer)
FROM generate_series(1, 100000) m;
    """


def _statements_of(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    """The SQL statements (with parameters) that ``run(session)`` sends."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # noqa: ANN001
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with Session(engine) as session:
            run(session)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return seen


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _outline(plan: dict[str, Any], depth: int = 0) -> str:
    """A plan as an indented outline of node types and the relations they read."""
    line = " " * depth + " ".join(
        str(plan.get(k, "")) for k in ("Node Type", "Relation Name", "Index Name")
    )
    return "\n".join([line, *(_outline(child, depth + 2) for child in plan.get("Plans", []))])


def _as_tables(engine: Engine, nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plan nodes with each partition named as its table, and each partition's index
    as the table's index it was made from (event and target are partitioned by day).
    Nodes reading an empty partition (a day ahead: nothing to read) are left out."""
    with engine.connect() as conn:
        empty = set(
            conn.execute(
                text("SELECT relname FROM pg_class WHERE relispartition AND reltuples <= 0")
            ).scalars()
        )
        parent = dict(
            conn.execute(
                text(
                    "SELECT c.relname, p.relname FROM pg_inherits i"
                    " JOIN pg_class c ON c.oid = i.inhrelid"
                    " JOIN pg_class p ON p.oid = i.inhparent"
                )
            ).all()
        )
    renamed = []
    for node in nodes:
        if node.get("Relation Name") in empty:
            continue
        node = dict(node)
        for field in ("Relation Name", "Index Name"):
            if node.get(field) in parent:
                node[field] = parent[node[field]]
        renamed.append(node)
    return renamed


def _plans(engine: Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    plans = []
    with engine.connect() as conn:
        for statement, parameters in statements:
            cursor = conn.connection.driver_connection.cursor()
            cursor.execute(f"EXPLAIN (FORMAT JSON) {statement}", parameters)
            raw = cursor.fetchone()[0]
            plans.append(raw[0]["Plan"] if isinstance(raw, list) else json.loads(raw)[0]["Plan"])
    return plans


MSGID = "v:1t:1700000000p:1234n:1"


READS = {
    "summary": lambda s: queries.message_summary(session=s, msgid=MSGID),
    "timeline": lambda s: queries.timeline(session=s, msgid=MSGID, limit=100),
    "timeline-next-page": lambda s: queries.timeline(
        session=s,
        msgid=MSGID,
        cursor=queries.timeline(session=s, msgid=MSGID, limit=10).next_cursor,
    ),
    "targets": lambda s: queries.targets(session=s, msgid=MSGID, status="delivered"),
    "targets-next-page": lambda s: queries.targets(
        session=s, msgid=MSGID, cursor=queries.targets(session=s, msgid=MSGID, limit=5).next_cursor
    ),
    "list-by-param": lambda s: queries.list_messages(session=s, params={"order_id": "1234"}),
    "targets-by-stage": lambda s: queries.targets(
        session=s, msgid=MSGID, has=["delivered"], lacks=["clicked"], channel="app"
    ),
    "targets-by-error": lambda s: queries.targets(session=s, msgid=MSGID, error_code=3005),
    "targets-stale": lambda s: queries.targets(session=s, msgid=MSGID, stale=True),
    "stale-metric": lambda s: stale_targets(
        session=s, stale_after=timedelta(minutes=30), now=datetime.now(UTC)
    ),
}


def test_one_message_is_read_by_index(big_engine):
    # One test for all reads: filling the tables is the slow part.
    for name, read in READS.items():
        statements = _statements_of(big_engine, read)
        assert statements, name
        for plan in _plans(big_engine, statements):
            scanned = {
                node.get("Relation Name")
                for node in _as_tables(big_engine, list(_nodes(plan)))
                if node["Node Type"] == "Seq Scan"
            }
            assert not scanned & {"event", "target", "message"}, (name, _outline(plan))


def test_timeline_pages_come_in_index_order(big_engine):
    # No sort: a page reads its rows in index order and stops at the limit, however
    # many events the message has.
    for name in ("timeline", "timeline-next-page"):
        statements = _statements_of(big_engine, READS[name])
        plan = _plans(big_engine, statements)[-1]
        nodes = _as_tables(big_engine, list(_nodes(plan)))
        assert {"Sort", "Incremental Sort"}.isdisjoint(n["Node Type"] for n in nodes), (name, plan)
        assert "ix_event_timeline" in {n.get("Index Name") for n in nodes}, name


HISTORY = {
    "history": lambda s: history.recipient_events(session=s, recipient="user7", limit=100),
    "history-next-page": lambda s: history.recipient_events(
        session=s,
        recipient="user7",
        cursor=history.recipient_events(session=s, recipient="user7", limit=10).next_cursor,
    ),
}


def test_recipient_history_is_two_index_range_scans(big_engine):
    # Thousands of events per userid among 250,000: each page reads the userid and
    # the sender_id index, never the whole event table.
    for name, run in HISTORY.items():
        statements = _statements_of(big_engine, run)
        assert statements, name
        for plan in _plans(big_engine, statements):
            nodes = _as_tables(big_engine, list(_nodes(plan)))
            scanned = {n.get("Relation Name") for n in nodes if n["Node Type"] == "Seq Scan"}
            assert "event" not in scanned, (name, json.dumps(plan))
            indexes = {n.get("Index Name") for n in nodes}
            assert {"ix_event_userid", "ix_event_sender_id"} <= indexes, (name, json.dumps(plan))


def test_service_connections_do_without_jit(engine):
    # JIT compiling took longer than a big broadcast's summary then ran.
    with engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar() == "off"
