"""The outage spool: with PostgreSQL unreachable, intake keeps each batch on disk and
answers 200; a drain stores it later through the same intake, exactly once.

Whole-service faults (a worker or the server killed, the emulator's retries over an
outage) are in ``test_spool_faults.py``; these tests drive the app and the drain in
this process, with the database cut by a loopback proxy.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import Engine

from receiver import create_app
from receiver.cli import main
from receiver.config import Settings
from receiver.db import make_engine, migrate
from receiver.drain import Drainer, drain
from receiver.spool import STALE_TMP_SECONDS, Spool, SpoolFull
from tests.conftest import TEST_DATABASE_URL, fresh_postgres_schema
from tests.helpers import (
    API_TOKEN,
    CHANNEL,
    CHANNELS_ENV,
    events,
    nine_type_batch,
    post,
    quarantined,
    record,
    targets,
)
from tests.tcpproxy import TcpProxy
from tests.test_database_down import postgres_outage_switch

postgres_only = pytest.mark.skipif(not TEST_DATABASE_URL, reason="the spool is PostgreSQL's")
NOW = "2026-11-26T10:00:00+00:00"


# --- the spool's files, no database -------------------------------------------------


def _append(spool: Spool, body: bytes, **extra: Any) -> Any:
    return spool.append(
        channelkey=CHANNEL, received_at=datetime.fromisoformat(NOW), body=body, **extra
    )


def test_an_entry_keeps_the_body_exactly_and_its_arrival(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    body = b'[{"msgid": "m", "type": 0}]\n\x00\xff not even utf-8'
    entry = _append(spool, body)
    assert spool.entries() == [entry]
    kept = spool.read(entry)
    assert (kept.channelkey, kept.received_at.isoformat(), kept.body) == (CHANNEL, NOW, body)
    assert kept.reason is None
    assert entry.arrived.isoformat() == NOW
    # Owner-only: it holds phone numbers and user ids.
    assert (spool.directory.stat().st_mode & 0o777, entry.path.stat().st_mode & 0o777) == (
        0o700,
        0o600,
    )
    assert not list(spool.tmp.iterdir())  # written whole, then moved in


def test_entries_come_out_oldest_first(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    start = datetime(2026, 11, 26, tzinfo=UTC)
    order = [3, 0, 2, 1]
    for i in order:
        spool.append(channelkey=CHANNEL, received_at=start + timedelta(seconds=i), body=b"%d" % i)
    assert [spool.read(e).body for e in spool.entries()] == [b"0", b"1", b"2", b"3"]


def test_a_full_spool_refuses_and_harms_nothing_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1000)
    kept = [_append(spool, b"x" * 200) for _ in range(3)]  # about 280 bytes each
    with pytest.raises(SpoolFull, match="the spool is full: .* SPOOL_MAX_BYTES"):
        _append(spool, b"y" * 400)
    assert set(spool.entries()) == set(kept)
    assert all(spool.read(e).body == b"x" * 200 for e in kept)
    assert not list(spool.tmp.iterdir())
    assert spool.status().bytes == sum(e.path.stat().st_size for e in kept)
    # Room again once an entry is drained.
    spool.remove(kept[0])
    _append(spool, b"y" * 200)
    assert len(spool.entries()) == 3


def test_a_recount_mends_the_count_and_clears_dead_writers_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    entry = _append(spool, b"[]")
    (spool.directory / "used").write_text("999999")  # a process died between the two
    dead = spool.tmp / "00000000000000000001-1-dead.batch"
    dead.write_bytes(b"half a batch")
    old = time.time() - STALE_TMP_SECONDS - 1
    os.utime(dead, (old, old))
    fresh = spool.tmp / "00000000000000000002-2-live.batch"
    fresh.write_bytes(b"being written")
    spool.recount()
    assert spool.status().bytes == entry.path.stat().st_size
    assert not dead.exists() and fresh.exists()


def test_a_spool_that_cannot_be_written_refuses_and_keeps_what_it_holds(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    kept = _append(spool, b"[]")
    spool.tmp.rmdir()
    spool.tmp.write_bytes(b"")  # where entries are written is no directory: any write fails
    with pytest.raises(SpoolFull, match=r"the spool cannot be written \("):
        _append(spool, b"[1]")
    assert spool.entries() == [kept] and spool.read(kept).body == b"[]"


def test_one_drainer_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", 1 << 20)
    with spool.drain_turn() as first:
        with spool.drain_turn() as second:
            assert (first, second) == (True, False)
        assert spool.status().draining
    assert not spool.status().draining


def test_sqlite_and_off_have_no_spool(tmp_path: Path) -> None:
    sqlite = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/a.db"})
    assert Spool.from_settings(sqlite) is None
    off = Settings.from_env({"DATABASE_URL": "postgresql://h/db", "SPOOL_DIR": "off"})
    assert Spool.from_settings(off) is None
    default = Settings.from_env({"DATABASE_URL": "postgresql://h/db"})
    spool = Spool.from_settings(default)
    assert spool is not None and spool.directory == Path.cwd() / "umstrack-spool"
    assert spool.max_bytes == 1 << 30


# --- intake and drain against PostgreSQL ----------------------------------------------


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[Flask, TcpProxy, Engine, Spool]]:
    """An app on a fresh PostgreSQL schema reached through a proxy the test cuts, its
    spool in tmp_path; and an engine that reaches the schema directly."""
    if not TEST_DATABASE_URL:
        pytest.skip("the spool is PostgreSQL's")
    with fresh_postgres_schema() as url:
        migrate(url)
        with postgres_outage_switch(url) as (app_url, go_down, come_back):
            app = create_app(
                {
                    "DATABASE_URL": app_url,
                    "SPOOL_DIR": f"{tmp_path}/spool",
                    "API_TOKENS": API_TOKEN,
                    "HOST": "127.0.0.1",  # metrics without a token
                    **CHANNELS_ENV,
                }
            )
            direct = make_engine(Settings.from_env({"DATABASE_URL": url}))
            switch = _Switch(go_down, come_back)
            try:
                yield app, switch, direct, app.extensions["umstrack.spool"]  # type: ignore[misc]
            finally:
                switch.up()
                app.extensions["umstrack.engine"].dispose()
                direct.dispose()


class _Switch:
    def __init__(self, go_down: Any, come_back: Any) -> None:
        self._down, self._up, self.is_down = go_down, come_back, False

    def down(self) -> None:
        if not self.is_down:
            self._down()
            self.is_down = True

    def up(self) -> None:
        if self.is_down:
            self._up()
            self.is_down = False


@postgres_only
def test_a_batch_is_spooled_while_the_database_is_away_and_stored_once_back(outage) -> None:
    app, switch, direct, spool = outage
    client = app.test_client()
    batch = nine_type_batch(100, msgid="spooled")
    switch.down()
    response = post(client, batch)
    assert response.status_code == 200
    assert response.json == {"received": 100, "spooled": 100}
    assert len(spool.entries()) == 1 and events(direct) == []
    ready = client.get("/readyz").json
    assert ready["checks"]["database"] == "unavailable"
    assert ready["checks"]["spool"].startswith("1 entries, ")

    # The database is back: a drain stores it, with its arrival time.
    arrived = spool.read(spool.entries()[0]).received_at
    assert time.time() - arrived.timestamp() < 5
    switch.up()
    time.sleep(0.01)  # a drain's own time is later
    done = drain(app.extensions["umstrack.engine"], spool)
    assert (done.entries, done.records, done.stopped) == (1, 100, None)
    assert done.outcomes == {"stored": 100, "duplicates": 0, "quarantined": 0}
    stored = events(direct)
    assert len(stored) == 100 and len(targets(direct)) == 100
    assert {e.received_at for e in stored} == {arrived}
    assert spool.entries() == [] and spool.status().bytes == 0
    assert client.get("/readyz").json["checks"]["spool"] == "empty"
    # UMS never got a 503, so it sends nothing again; a second drain finds nothing.
    assert drain(app.extensions["umstrack.engine"], spool).entries == 0


@postgres_only
def test_drained_batches_leave_what_posting_them_directly_leaves(outage) -> None:
    """Spooled and drained, or stored as they came: the same events and targets, stages
    and errors included; records of another channel's message quarantined alike."""
    app, switch, direct, spool = outage
    client = app.test_client()
    batches = _conflicting_batches(seed=7)
    switch.down()
    for batch in batches:
        assert post(client, batch).json["spooled"] == len(batch)
    switch.up()
    drain(app.extensions["umstrack.engine"], spool)

    with fresh_postgres_schema() as twin_url:
        migrate(twin_url)
        twin = create_app({"DATABASE_URL": twin_url, "SPOOL_DIR": "off", **CHANNELS_ENV})
        try:
            for batch in batches:
                assert post(twin.test_client(), batch).status_code == 200
            twin_engine = twin.extensions["umstrack.engine"]
            assert _target_states(direct) == _target_states(twin_engine)
            assert sorted(e.event_key for e in events(direct)) == sorted(
                e.event_key for e in events(twin_engine)
            )
        finally:
            twin.extensions["umstrack.engine"].dispose()


def _conflicting_batches(*, seed: int, n: int = 12) -> list[list[dict[str, Any]]]:
    """Batches whose records fight over the same targets: every type on a few
    recipients, repeats included, in a shuffled order."""
    rng = random.Random(seed)
    records = [
        record(
            t, msgid=f"m{m}", userid=f"u{u}", sender=s, sent_time=1_700_000_000 + rng.randrange(50)
        )
        for m in range(2)
        for u in range(5)
        for s in (1, 2)
        for t in range(9)
    ]
    records += rng.sample(records, 30)  # UMS's retries
    rng.shuffle(records)
    return [records[i : i + len(records) // n] for i in range(0, len(records), len(records) // n)]


def _target_states(engine: Engine) -> dict[Any, dict[str, Any]]:
    """Every target as stored, but for when it was last touched (an arrival time)."""
    return {
        key: target.model_dump(exclude={"updated_at"}) for key, target in targets(engine).items()
    }


@postgres_only
def test_a_body_that_is_no_batch_is_spooled_with_its_reason_then_quarantined(outage) -> None:
    app, switch, direct, spool = outage
    client = app.test_client()
    switch.down()
    response = post(client, b"{not json")
    assert response.status_code == 400
    assert "kept in quarantine" in response.json["message"]
    switch.up()
    drain(app.extensions["umstrack.engine"], spool)
    (kept,) = quarantined(direct)
    assert kept.raw == "{not json" and kept.reason.startswith("body is not JSON")
    assert kept.channelkey == CHANNEL


@postgres_only
def test_bad_records_of_a_spooled_batch_are_quarantined_when_drained(outage) -> None:
    app, switch, direct, spool = outage
    batch = [*nine_type_batch(3, msgid="fine"), {"type": 0}, {**record(0), "channelkey": "x"}]
    switch.down()
    assert post(app.test_client(), batch).json == {"received": 5, "spooled": 5}
    switch.up()
    done = drain(app.extensions["umstrack.engine"], spool)
    assert done.outcomes == {"stored": 3, "duplicates": 0, "quarantined": 2}
    assert len(events(direct)) == 3
    assert sorted(q.cause for q in quarantined(direct)) == [
        f"channelkey 'x' is not the authenticated channel '{CHANNEL}'",
        "msgid is missing",
    ]


@postgres_only
def test_a_full_spool_answers_503_and_keeps_what_it_holds(outage, tmp_path: Path) -> None:
    app, switch, direct, spool = outage
    spool.max_bytes = 60_000  # room for two batches of 100 records (about 24 kB each)
    client = app.test_client()
    switch.down()
    first = [post(client, nine_type_batch(100, msgid=f"m{i}")) for i in range(2)]
    assert [r.status_code for r in first] == [200, 200]
    refused = post(client, nine_type_batch(100, msgid="m2"))
    assert refused.status_code == 503
    assert refused.json["error"] == "database_unavailable"
    assert "the spool is full" in refused.json["message"] and refused.headers["Retry-After"]
    assert len(spool.entries()) == 2

    switch.up()
    drain(app.extensions["umstrack.engine"], spool)
    assert {e.msgid for e in events(direct)} == {"m0", "m1"}
    # UMS's retry of the refused batch, now the database is back.
    assert post(client, nine_type_batch(100, msgid="m2")).json["stored"] == 100
    assert len(events(direct)) == 300


@postgres_only
def test_an_entry_drained_again_after_a_crash_is_stored_once(outage, tmp_path: Path) -> None:
    """A drainer killed between its commit and removing the entry: the next drain takes
    the entry again, and its records are duplicates."""
    app, switch, direct, spool = outage
    switch.down()
    post(app.test_client(), nine_type_batch(100, msgid="twice"))
    (entry,) = spool.entries()
    copy = tmp_path / "copy"
    shutil.copy(entry.path, copy)
    switch.up()
    drain(app.extensions["umstrack.engine"], spool)
    shutil.copy(copy, entry.path)  # as if the removal never happened
    again = drain(app.extensions["umstrack.engine"], spool)
    assert again.outcomes == {"stored": 0, "duplicates": 100, "quarantined": 0}
    assert len(events(direct)) == 100
    assert all(t.event_count == 1 for t in targets(direct).values())


@postgres_only
def test_batches_arriving_during_a_drain_keep_the_stage_rule(outage) -> None:
    """Live batches for the same targets as the spooled ones, posted while the spool
    drains: each target ends where the rule puts it, whatever came first."""
    app, switch, direct, spool = outage
    client = app.test_client()
    batches = _conflicting_batches(seed=11, n=24)
    spooled, live = batches[::2], batches[1::2]
    switch.down()
    for batch in spooled:
        assert "spooled" in post(client, batch).json
    switch.up()
    drainer = threading.Thread(target=drain, args=(app.extensions["umstrack.engine"], spool))
    drainer.start()
    for batch in live:
        assert post(client, batch).status_code == 200
    drainer.join()
    assert spool.entries() == []

    with fresh_postgres_schema() as twin_url:
        migrate(twin_url)
        twin = create_app({"DATABASE_URL": twin_url, "SPOOL_DIR": "off", **CHANNELS_ENV})
        try:
            for batch in batches:  # in the order they were made
                post(twin.test_client(), batch)
            assert _target_states(direct) == _target_states(twin.extensions["umstrack.engine"])
        finally:
            twin.extensions["umstrack.engine"].dispose()


@postgres_only
def test_an_unreadable_entry_is_quarantined_not_lost(outage) -> None:
    app, switch, direct, spool = outage
    switch.down()
    post(app.test_client(), nine_type_batch(2))
    (entry,) = spool.entries()
    entry.path.write_bytes(b"garbled header\n[1, 2]")
    switch.up()
    drain(app.extensions["umstrack.engine"], spool)
    (kept,) = quarantined(direct)
    assert kept.raw == "garbled header\n[1, 2]"
    assert "no readable header" in kept.reason
    assert spool.entries() == []


@postgres_only
def test_the_workers_drainer_starts_within_seconds_of_the_database_answering(
    outage, caplog: pytest.LogCaptureFixture
) -> None:
    app, switch, direct, spool = outage
    caplog.set_level(logging.INFO, logger="receiver.drain")
    drainer = Drainer(app.extensions["umstrack.engine"], spool, interval=0.1)
    drainer.start()
    try:
        switch.down()
        for i in range(5):
            assert "spooled" in post(app.test_client(), nine_type_batch(10, msgid=f"d{i}")).json
        time.sleep(0.5)  # the drainer tries, and waits for the database
        assert len(spool.entries()) == 5
        # Said once as the wait begins (not at each try), with what waits.
        waits = [r.getMessage() for r in caplog.records if "spool waits" in r.getMessage()]
        assert len(waits) == 1, waits
        assert waits[0].startswith("spool waits for the database: 5 entries, ")
        switch.up()
        back = time.monotonic()
        while spool.entries() and time.monotonic() - back < 10:
            time.sleep(0.05)
        assert spool.entries() == []
        assert time.monotonic() - back < 5
        assert len(events(direct)) == 50
        assert any(
            r.getMessage().startswith("spool drained: 5 entries, 50 records")
            for r in caplog.records
        )
    finally:
        drainer.stop()


@postgres_only
def test_spooled_records_are_counted(outage) -> None:
    app, switch, _direct, spool = outage
    client = app.test_client()
    switch.down()
    post(client, nine_type_batch(9))
    text = client.get("/metrics").get_data(as_text=True)
    spooled = [
        line
        for line in text.splitlines()
        if line.startswith("umstrack_callback_records_total{") and 'outcome="spooled"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in spooled) >= 9
    assert "umstrack_spool_entries 1.0" in text
    assert "umstrack_spool_oldest_age_seconds" in text
    switch.up()


# --- umstrack spool status|drain ------------------------------------------------------


@postgres_only
def test_spool_status_and_drain_commands(outage, runner: CliRunner) -> None:
    app, switch, direct, spool = outage
    switch.down()
    post(app.test_client(), nine_type_batch(20))
    switch.up()
    url = app.extensions["umstrack.engine"].url.render_as_string(hide_password=False)
    env = {"DATABASE_URL": url, "SPOOL_DIR": str(spool.directory)}
    status = runner.invoke(main, ["spool", "status"], env=env)
    assert status.exit_code == 0, status.output
    found = json.loads(status.output)
    assert (found["enabled"], found["entries"], found["held"]) == (True, 1, 0)
    assert found["bytes"] > 0 and found["oldest"] is not None

    drained = runner.invoke(main, ["spool", "drain"], env=env)
    assert drained.exit_code == 0, drained.output
    assert json.loads(drained.output[drained.output.index("{") :])["stored"] == 20
    assert len(events(direct)) == 20
    assert json.loads(runner.invoke(main, ["spool", "status"], env=env).output)["entries"] == 0


def test_spool_commands_on_sqlite(tmp_path: Path, runner: CliRunner) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/u.db"}
    status = runner.invoke(main, ["spool", "status"], env=env)
    assert status.exit_code == 0
    assert json.loads(status.output) == {"enabled": False, "why": "the database is SQLite"}
    drained = runner.invoke(main, ["spool", "drain"], env=env)
    assert drained.exit_code == 2
    assert "no outage spool to drain: the database is SQLite" in drained.output
