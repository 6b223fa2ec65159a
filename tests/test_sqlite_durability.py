"""SQLite commits: what is answered is on the disk, and the next writer does not wait for
that disk write. A commit writes its WAL frames (synchronous=NORMAL); the writer that
committed hands the writer turn on, then waits for the WAL to reach the disk
(receiver.db.sync_wal), then answers.

The order is watched through Python's audit events: sync_wal opens the WAL file (SQLite's
own file access raises none), and at that moment the turn must be free and the batch
visible to another connection."""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from receiver import create_app, sqlite_wal
from receiver.db import WAL_CHECKPOINT_PAGES, migrate, write_transaction
from receiver.sqlite_wal import WAL_FILES_KEPT, sync_wal
from tests.helpers import CHANNELS_ENV, post, record, writer_turn_is_free

# What the audit hook does while a test watches: the path it waits for, and what it saw.
_watch: dict[str, Any] = {}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _watch or _watch.get("busy"):
        return
    path = args[0]
    if not isinstance(path, str) or path not in _watch["paths"] or not os.path.exists(path):
        return  # (an open that is about to fail raises its event too)
    _watch["busy"] = True  # what it does below opens files too
    try:
        _watch["seen"].append((path, *_watch["look"]()))
    finally:
        _watch["busy"] = False


sys.addaudithook(_audit)  # for the process's life: inert unless a test watches


@pytest.fixture
def database(tmp_path) -> str:
    return f"{tmp_path}/umstrack.db"


@pytest.fixture
def migrated(database: str) -> str:
    migrate(f"sqlite:///{database}")
    return database


@pytest.fixture
def watch(database: str) -> Iterator[list[tuple[Any, ...]]]:
    """What was seen each time the WAL file or the database's directory was opened: the
    path, whether the writer turn was free, and how many events another connection saw."""

    def look() -> tuple[bool, int]:
        with sqlite3.connect(database) as other:
            (events,) = other.execute("SELECT count(*) FROM event").fetchone()
        other.close()
        return writer_turn_is_free(f"{database}.writer-lock"), events

    seen: list[tuple[Any, ...]] = []
    _watch.update(paths={f"{database}-wal", os.path.dirname(database)}, look=look, seen=seen)
    yield seen
    _watch.clear()


@pytest.fixture
def sqlite_app(migrated: str) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": f"sqlite:///{migrated}", **CHANNELS_ENV})
    yield app
    app.extensions["umstrack.engine"].dispose()


def test_a_batch_is_on_the_disk_before_its_answer_and_after_its_turn(database, sqlite_app, watch):
    answers = []

    @sqlite_app.after_request
    def _answered(response):
        answers.append(len(watch))
        return response

    client = sqlite_app.test_client()
    assert post(client, [record(2)]).status_code == 200
    watch.clear()  # the first commit also synced the new WAL file's directory
    answers.clear()
    assert post(client, [record(4)]).status_code == 200
    # Synced once, after the turn was handed on, with the batch committed; then answered.
    assert watch == [(f"{database}-wal", True, 2)]
    assert answers == [1]


def test_commits_leave_the_disk_wait_to_the_writer(sqlite_app):
    engine = sqlite_app.extensions["umstrack.engine"]
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        # NORMAL: the commit does not wait for the disk; its writer does (sync_wal).
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == WAL_CHECKPOINT_PAGES


def test_a_transaction_rolled_back_waits_for_no_disk(database, sqlite_app, watch):
    engine = sqlite_app.extensions["umstrack.engine"]
    with write_transaction(engine) as session:
        session.execute(text("SELECT 1"))
    watch.clear()
    with pytest.raises(RuntimeError), write_transaction(engine) as session:
        session.execute(text("DELETE FROM event"))
        raise RuntimeError("given up")
    assert watch == []
    with write_transaction(engine) as session:
        session.execute(text("DELETE FROM event"))
    assert watch == [(f"{database}-wal", True, 0)]


def test_a_new_wal_file_has_its_directory_entry_synced_once(database, watch):
    sync_wal(database)  # no WAL file: nothing to wait for
    assert watch == []
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE event (n)")
    wal, directory = f"{database}-wal", os.path.dirname(database)
    sync_wal(database)
    sync_wal(database)
    assert [path for path, *_ in watch] == [wal, directory, wal]
    connection.close()  # the last connection removes the WAL file, checkpointed
    assert not os.path.exists(wal)
    watch.clear()
    connection = sqlite3.connect(database)
    connection.execute("INSERT INTO event VALUES (1)")
    connection.commit()
    sync_wal(database)  # another file: its entry is synced too
    sync_wal(database)
    assert [path for path, *_ in watch] == [wal, directory, wal]
    connection.close()


def test_a_process_holds_a_few_wal_files_open_however_many_databases(tmp_path):
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_files()
    for n in range(3 * WAL_FILES_KEPT):
        connection = sqlite3.connect(tmp_path / f"{n}.db")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE event (n)")
        sync_wal(str(tmp_path / f"{n}.db"))
        connection.close()
    assert open_files() - before <= WAL_FILES_KEPT


def test_a_commit_is_copied_into_the_database_file_soon_by_a_thread_of_its_own(
    migrated, sqlite_app, tmp_path
):
    # One small batch is far from the WAL's size for a checkpoint in the writer's turn:
    # what copies it into the database file is the process's checkpointer.
    assert post(sqlite_app.test_client(), [record(2)]).status_code == 200
    copy = tmp_path / "copy.db"
    deadline = time.monotonic() + 10
    events = 0
    while events == 0 and time.monotonic() < deadline:
        shutil.copyfile(migrated, copy)  # the database file alone, not its WAL
        try:
            with sqlite3.connect(copy) as connection:
                (events,) = connection.execute("SELECT count(*) FROM event").fetchone()
            connection.close()
        except sqlite3.DatabaseError:  # copied while a page was being written
            events = 0
        time.sleep(0.05)
    assert events == 1


def test_a_checkpointer_ends_once_idle_and_the_next_commit_starts_another(migrated, monkeypatch):
    monkeypatch.setattr(sqlite_wal, "CHECKPOINTER_IDLE_SECONDS", 0.2)
    first = sqlite_wal.checkpoint_soon(migrated)
    assert first.done.wait(5)
    first.thread.join(5)
    assert not first.thread.is_alive()
    second = sqlite_wal.checkpoint_soon(migrated)
    assert second is not first
    assert second.done.wait(5)


def test_a_checkpointer_that_cannot_open_its_database_gives_way_to_the_next(tmp_path):
    missing = str(tmp_path / "no such directory" / "umstrack.db")
    first = sqlite_wal.checkpoint_soon(missing)
    first.thread.join(5)
    assert not first.thread.is_alive() and not first.done.is_set()
    assert sqlite_wal.checkpoint_soon(missing) is not first
