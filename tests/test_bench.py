"""``umstrack bench`` measures what it says: its workloads, its ceiling (the database's
own bulk load into a table shaped like event, leaving nothing behind), and a run that
prints events/s with the ratio to that ceiling. Figures are the benchmark's business;
these tests check that it measures the right thing, not how fast."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import inspect

from receiver.bench import BENCH_CHANNEL, BenchOptions, Workload, check, measure_ceiling
from receiver.ceiling import CEILING_TABLE, event_rows
from receiver.db import write_transaction
from receiver.intake import record_batch
from receiver.store.statements import EVENT
from tests.helpers import CHANNEL


def test_a_broadcast_is_one_message_and_messages_a_new_one_a_batch() -> None:
    broadcast = Workload("broadcast", "ck", 100, "1")
    messages = Workload("messages", "ck", 100, "1")
    first, second = broadcast.records(0), broadcast.records(1)
    assert {r["msgid"] for r in first + second} == {broadcast.msgid}
    keys = {(r["userid"], r["sender"], r["type"]) for r in first + second}
    assert len(keys) == 200  # no record repeats across batches
    assert {r["msgid"] for r in messages.records(0)} != {r["msgid"] for r in messages.records(1)}
    assert len(messages.records(7)) == 100
    with pytest.raises(ValueError, match="unknown workload"):
        Workload("other", "ck", 100, "1")


def test_ceiling_rows_have_the_event_tables_shape() -> None:
    records = Workload("broadcast", "ck", 10, "1").records(0)
    rows = event_rows(records, channelkey="ck")
    assert len(rows) == 10 and {len(row) for row in rows} == {len(EVENT.columns)}
    assert len({row[1] for row in rows}) == 10  # each its own event key


def test_the_ceiling_is_measured_and_leaves_nothing_behind(database_url: str, engine) -> None:
    found = measure_ceiling(database_url, BENCH_CHANNEL, BenchOptions(batch_size=100))
    assert found.rows >= 100_000 and found.rate > 0
    assert found.how in ("PostgreSQL COPY", "SQLite executemany")
    assert CEILING_TABLE not in inspect(engine).get_table_names()


def test_a_run_prints_events_per_second_and_the_ratio_to_the_ceiling() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "bench", "--workload", "messages",
         "--seconds", "1", "--warmup", "0.2", "--posters", "2"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "workload     messages: 2 posters, batches of 100, 1 s after 0.2 s of warm-up" in out
    assert "ceiling      SQLite executemany" in out
    assert " of the ceiling (" in out and "ack latency  p50 " in out
    assert "checked      " in out and ", each stored once; targets " in out


def test_the_check_finds_a_lost_batch_and_a_doubled_one(database_url: str, engine) -> None:
    workload = Workload("broadcast", CHANNEL, 10, "1")
    bodies = [workload.body(i) for i in range(3)]  # three batches made ...
    for body in bodies[:2]:  # ... two stored
        with write_transaction(engine) as session:
            record_batch(session=session, channelkey=CHANNEL, records=json.loads(body))
    lost = check(database_url, workload)
    assert not lost.holds and (lost.events, lost.expected_events) == (20, 30)
    assert lost.report().startswith("MISMATCH     20 events stored of 30 posted")
    with write_transaction(engine) as session:
        record_batch(session=session, channelkey=CHANNEL, records=json.loads(bodies[2]))
    assert check(database_url, workload).holds
    # A record stored twice under another key (an intake that failed to see a repeat).
    doubled = {**json.loads(bodies[0])[0], "extra": 1}
    with write_transaction(engine) as session:
        record_batch(session=session, channelkey=CHANNEL, records=[doubled])
    assert not check(database_url, workload).holds
