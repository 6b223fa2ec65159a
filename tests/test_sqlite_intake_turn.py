"""What SQLite's intake does while a batch holds the writer turn, and what it does before:
the values of a batch's event rows that depend on the records alone are made before the
turn is taken, and are the values the turn would have made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from receiver import create_app
from receiver.intake import check_batch
from receiver.store import sqlite as sqlite_store
from receiver.store.sqlite import PreparedRecord, event_values
from tests.helpers import (
    CHANNEL,
    CHANNELS_ENV,
    OTHER_CHANNEL,
    SENT_TIME,
    events,
    post,
    record,
    writer_turn_is_free,
)

RECORDS = [
    record(0),
    record(4, sent_time=None),  # occurred when it arrived
    record(5, sent_time=1_700_000_000_123, error={"code": "0123", "message": "m"}),
    record(2, userid="", sender_id="13800000000", app_platform=10**30, params=None),
    record(6, userid="用户-ü", params={"z": [1, {"b": "é"}], "a": None}, extra={"kept": 1}),
]


@pytest.fixture
def sqlite_app(engine_for_sqlite: tuple[str, Any]) -> Iterator[Flask]:
    url, _ = engine_for_sqlite
    app = create_app({"DATABASE_URL": url, **CHANNELS_ENV})
    yield app
    app.extensions["umstrack.engine"].dispose()


@pytest.mark.parametrize("rec", RECORDS)
def test_a_prepared_record_gives_the_values_of_the_record(rec):
    prepared = PreparedRecord(rec, channelkey=CHANNEL)
    assert prepared == rec
    at = "2026-03-04 05:06:07.890123"
    assert event_values(prepared, channelkey=CHANNEL, received_at=at, day=7) == event_values(
        rec, channelkey=CHANNEL, received_at=at, day=7
    )


def test_a_record_prepared_for_another_channel_is_made_again():
    prepared = PreparedRecord(record(0), channelkey=OTHER_CHANNEL)
    values = event_values(prepared, channelkey=CHANNEL, received_at="t", day=1)
    assert values[3] == CHANNEL


def test_check_batch_prepares_the_usable_records_when_asked():
    batch = [record(0), {"type": 0}, record(2, sent_time=SENT_TIME + 1)]
    plain = check_batch(batch, channelkey=CHANNEL)
    assert plain.prepared is None
    checked = check_batch(batch, channelkey=CHANNEL, prepare_rows=True)
    assert checked.prepared == [record for _, record in checked.good]
    assert [type(r) for r in checked.prepared] == [PreparedRecord, PreparedRecord]


def test_event_values_are_made_before_the_writer_turn(tmp_path, sqlite_app, monkeypatch):
    # Only one writer holds SQLite at a time: work done while holding it limits intake.
    lock_path = f"{tmp_path}/umstrack.db.writer-lock"
    made_while_free = []
    original = sqlite_store._own_values

    def watched(*args: Any) -> Any:
        made_while_free.append(writer_turn_is_free(lock_path))
        return original(*args)

    monkeypatch.setattr(sqlite_store, "_own_values", watched)
    answer = post(sqlite_app.test_client(), RECORDS).json
    assert answer["stored"] == len(RECORDS)
    assert made_while_free == [True] * len(RECORDS)
    assert len(events(sqlite_app.extensions["umstrack.engine"])) == len(RECORDS)


UNSTORABLE = [
    record(0, userid="nul\x00inside"),
    record(0, userid="lone \ud800 surrogate"),
    record(0, params={"big": float("inf")}),
    record(0, params={"nan": float("nan")}),
    record(0, params={"key \x00": 1}),
]
# Records that look unstorable at a first glance at their JSON text, and are not.
STORABLE = [record(0, userid="u9", params={"text": "\\u0000 as six characters"})]


@pytest.mark.parametrize("rec", UNSTORABLE + STORABLE)
def test_prepared_batches_reject_what_the_database_cannot_hold_alike(rec):
    batch = [record(0, userid="before"), rec, record(2, userid="after")]
    plain = check_batch(batch, channelkey=CHANNEL)
    prepared = check_batch(batch, channelkey=CHANNEL, prepare_rows=True)
    assert prepared.rejects == plain.rejects
    assert prepared.good == plain.good
    assert prepared.prepared == [record for _, record in plain.good]
    assert prepared.good_json == ""  # SQLite's statements read the prepared records
    assert len(plain.rejects) == (1 if rec in UNSTORABLE else 0)
