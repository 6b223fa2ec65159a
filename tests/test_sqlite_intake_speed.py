"""What SQLite's fast intake path must keep: rows stored exactly as before (times as
SQLAlchemy writes them, the event key earlier releases computed), a batch's targets
folded by the stage rule, no per-record work left to SQLAlchemy's types, and the writer
turn handed on as soon as a batch's transaction ends. The stored values are checked on
every backend: PostgreSQL's statement must agree with SQLite's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import insert, text
from sqlalchemy.dialects import sqlite

from receiver import create_app
from receiver.db import close_session, write_session, write_transaction
from receiver.intake import record_batch
from receiver.models import UTCDateTime
from receiver.store import EVENT, claim_messages, digest, store_events
from receiver.store.sqlite import EVENT_COLUMNS, MAX_ROWS, add_events_sql, time_text
from receiver.store.statements import MILLISECONDS_FROM
from tests.helpers import (
    CHANNEL,
    CHANNELS_ENV,
    MSGID,
    SENT_TIME,
    events,
    post,
    record,
    targets,
    writer_turn_is_free,
)

# sent_time values around every edge of the seconds / milliseconds rule
SENT_TIMES = [
    0,
    1,
    SENT_TIME,
    MILLISECONDS_FROM - 1,
    MILLISECONDS_FROM,
    1_700_000_000_123,
    1_700_000_000_999,
    253_402_128_000_000,  # the bound: 9999-12-30
]


def sqlalchemy_text(moment: datetime) -> str:
    """How SQLAlchemy itself stores a UTCDateTime on SQLite."""
    dialect = sqlite.dialect()
    column_type = UTCDateTime()
    naive = column_type.process_bind_param(moment, dialect)
    process = column_type.impl_instance.dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    stored: str = process(naive)
    return stored


def when(sent_time: int) -> datetime:
    seconds = sent_time / 1000 if sent_time >= MILLISECONDS_FROM else sent_time
    return datetime.fromtimestamp(seconds, UTC)


@pytest.fixture
def sqlite_app(engine_for_sqlite) -> Iterator[Flask]:
    url, _ = engine_for_sqlite
    app = create_app({"DATABASE_URL": url, **CHANNELS_ENV})
    yield app
    app.extensions["umstrack.engine"].dispose()


@pytest.mark.parametrize("sent_time", SENT_TIMES)
def test_times_are_stored_as_sqlalchemy_stores_them(engine_for_sqlite, sent_time):
    # Times are compared as text in SQL (the stage rule's "earlier"): rows stored by the
    # fast path and by SQLAlchemy (earlier releases, other writers) must sort alike.
    url, engine = engine_for_sqlite
    arrived = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    with write_transaction(engine) as session:
        record_batch(
            session=session,
            channelkey=CHANNEL,
            records=[record(4, sent_time=sent_time), record(2, sent_time=None)],
            received_at=arrived,
        )
    with engine.connect() as conn:
        stored = conn.execute(
            text("SELECT type, occurred_at, received_at FROM event ORDER BY type")
        ).all()
        reached = conn.execute(text("SELECT reached_at, updated_at FROM target")).one()
    assert stored == [
        (2, sqlalchemy_text(arrived), sqlalchemy_text(arrived)),  # no sent_time: arrival
        (4, sqlalchemy_text(when(sent_time)), sqlalchemy_text(arrived)),
    ]
    assert reached == (sqlalchemy_text(when(sent_time)), sqlalchemy_text(arrived))


def test_time_text_is_utc_whatever_the_zone():
    shanghai = datetime(2026, 1, 1, 8, 0, 0, 5, tzinfo=timezone(timedelta(hours=8)))
    assert time_text(shanghai) == "2026-01-01 00:00:00.000005"
    assert time_text(shanghai) == sqlalchemy_text(shanghai)


def test_a_record_stored_by_an_earlier_release_is_a_duplicate(sqlite_app):
    # Earlier releases keyed a SQLite event by the digest of the record's JSON with
    # sorted keys and no spaces: a retry of a record they stored is no new event.
    client = sqlite_app.test_client()
    engine = sqlite_app.extensions["umstrack.engine"]
    rec = record(5, userid="用户-ü", params={"z": [1, {"b": "é"}], "a": None})
    post(client, [record(0, userid="用户-ü")])  # the message exists, as it did then
    canonical = json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    row = dict.fromkeys(EVENT_COLUMNS) | {
        "msgid": MSGID,
        "event_key": digest(canonical.encode()),
        "type": 5,
        "channelkey": CHANNEL,
        "occurred_at": datetime.now(UTC),
        "raw": rec,
        "received_at": datetime.now(UTC),
        "day": events(engine)[0].day,
    }
    with engine.begin() as conn:
        conn.execute(insert(EVENT), [row])
    answer = post(client, [rec]).json
    assert (answer["stored"], answer["duplicates"]) == (0, 1)
    assert len(events(engine)) == 2


def test_values_are_stored_as_the_record_gave_them(client, engine):
    rec = record(
        3,
        userid="",  # UMS's "not applicable"
        sender_id="13800000000",
        app_platform=10**30,  # an integer past 64 bits, kept as its digits
        error={"code": "0123", "message": "鉴权失败 \u2028 'quoted'"},
        params={"nested": {"list": [1, 2.5, None, True]}, "text": "é"},
        extra_field={"kept": True},
    )
    assert post(client, [rec]).json["stored"] == 1
    (event,) = events(engine)
    assert (event.userid, event.sender_id) == (None, "13800000000")
    assert event.app_platform == str(10**30)
    assert (event.error_code, event.error_message) == (123, "鉴权失败 \u2028 'quoted'")
    assert event.params == rec["params"]
    assert event.raw == rec
    assert event.occurred_at == when(SENT_TIME)
    (target,) = targets(engine).values()
    assert (target.recipient, target.userid, target.sender_id) == (
        "13800000000",
        None,
        "13800000000",
    )
    assert (target.submission_error_code, target.submission_error_message) == (
        123,
        "鉴权失败 \u2028 'quoted'",
    )


def test_a_record_without_params_stores_none(client, engine):
    rec = record(4)
    del rec["params"]
    assert post(client, [rec, record(2, params=None)]).json["stored"] == 2
    assert [e.params for e in events(engine)] == [None, None]


def test_one_batch_folds_by_the_stage_rule(client, engine):
    # Several events of one target in one batch: the earliest failure's error, unless
    # the stage also succeeded; the best type, reached at its earliest time.
    def failed(type_, at, code):
        return record(type_, sent_time=at, error={"code": code, "message": f"m{code}"})

    batch = [
        failed(5, SENT_TIME + 30, 1),
        failed(5, SENT_TIME + 10, 2),  # the earliest delivery failure: its error is kept
        failed(5, SENT_TIME + 20, 3),
        record(2, sent_time=SENT_TIME + 9),
        failed(3, SENT_TIME + 5, 4),  # submission also succeeded: no error kept
        record(0, sent_time=SENT_TIME + 3),
        record(0, sent_time=SENT_TIME + 1),
        record(0, sent_time=SENT_TIME + 1),  # the same record twice: one event
        failed(8, SENT_TIME + 40, 5),
        failed(8, SENT_TIME + 50, 6),
    ]
    answer = post(client, batch).json
    assert (answer["stored"], answer["duplicates"]) == (9, 1)
    (target,) = targets(engine).values()
    assert (target.type, target.reached_at) == (8, when(SENT_TIME + 40))  # withdraw failed
    assert target.event_count == 9
    assert (target.validation_type, target.validation_at) == (0, when(SENT_TIME + 1))
    assert (target.submission_type, target.submission_at) == (2, when(SENT_TIME + 9))
    assert (target.submission_error_code, target.submission_error_message) == (None, None)
    assert (target.delivery_type, target.delivery_at) == (5, when(SENT_TIME + 10))
    assert (target.delivery_error_code, target.delivery_error_message) == (2, "m2")
    assert (target.withdrawal_error_code, target.withdrawal_error_message) == (5, "m5")
    # A later batch merges by the same rule: an earlier failure takes its place.
    post(client, [failed(5, SENT_TIME + 2, 7)])
    (target,) = targets(engine).values()
    assert (target.delivery_at, target.delivery_error_code) == (when(SENT_TIME + 2), 7)
    assert target.event_count == 10


def test_more_records_than_one_statement_holds(engine):
    # The intake takes at most 1000 records a batch; a larger list (a replay, a drain)
    # is stored in several statements, with duplicates across them found too.
    records = [record(0, userid=f"u{n}") for n in range(MAX_ROWS + 1)] + [record(0, userid="u0")]
    now = datetime.now(UTC)
    with write_transaction(engine) as session:
        claim_messages(session, records, channelkey=CHANNEL, now=now)
        stored, foreign = store_events(
            session,
            records=records,
            records_json=json.dumps(records, ensure_ascii=False),
            channelkey=CHANNEL,
            received_at=now,
        )
    assert stored.total() == MAX_ROWS + 1 and not foreign
    assert len(targets(engine)) == MAX_ROWS + 1
    with pytest.raises(ValueError):
        add_events_sql(MAX_ROWS + 1)


def test_a_batch_converts_no_value_per_record(engine_for_sqlite, monkeypatch):
    # SQLite's path hands the driver values it can bind as they are: SQLAlchemy's type
    # processing, per record and column, was most of a batch's time.
    url, engine = engine_for_sqlite
    conversions = []
    original = UTCDateTime.process_bind_param

    def counted(self, value, dialect):
        conversions.append(value)
        return original(self, value, dialect)

    monkeypatch.setattr(UTCDateTime, "process_bind_param", counted)
    batch = [record(n % 9, userid=f"u{n}", sent_time=SENT_TIME + n) for n in range(100)]
    with write_transaction(engine) as session:
        result = record_batch(session=session, channelkey=CHANNEL, records=batch)
    assert result.stored == 100
    assert len(conversions) <= 3  # the message's creation, the targets' update time


def test_the_writer_turn_ends_with_the_transaction(tmp_path, sqlite_app):
    # The next writer may start while this request still makes its answer.
    lock_path = f"{tmp_path}/umstrack.db.writer-lock"
    seen = []

    @sqlite_app.after_request
    def _look(response):
        seen.append(writer_turn_is_free(lock_path))
        return response

    assert post(sqlite_app.test_client(), [record(4)]).status_code == 200
    assert seen == [True]


def test_a_savepoint_keeps_the_writer_turn(tmp_path, sqlite_app):
    # A record refused alone (rolled back to its savepoint) leaves the batch's turn held.
    lock_path = f"{tmp_path}/umstrack.db.writer-lock"
    with sqlite_app.test_request_context():
        session = write_session()
        assert not writer_turn_is_free(lock_path)
        with session.begin_nested() as nested:
            session.execute(text("SELECT 1"))
            nested.rollback()
        assert not writer_turn_is_free(lock_path)
        session.commit()
        assert writer_turn_is_free(lock_path)
        write_session()  # a second write in the same request waits for its turn again
        assert not writer_turn_is_free(lock_path)
        session.rollback()
        assert writer_turn_is_free(lock_path)


def test_the_request_end_gives_back_a_turn_still_held(tmp_path, sqlite_app):
    # A request that took its turn and ended without commit or rollback (an error).
    lock_path = f"{tmp_path}/umstrack.db.writer-lock"
    with sqlite_app.test_request_context():
        write_session()
        assert not writer_turn_is_free(lock_path)
        close_session()
        assert writer_turn_is_free(lock_path)
