"""A SQLite database's WAL after a writer's commit, outside the writer turn: the writer
waits for its frames to reach the disk (:func:`sync_wal`) before it answers, and a
thread of its process copies the WAL into the database meanwhile (:func:`checkpoint_soon`).

A commit writes its WAL frames (``synchronous=NORMAL``); SQLite checkpoints the WAL in
the committing writer's turn only once it holds ``wal_autocheckpoint`` pages
(receiver.db), by then with little left to copy: the checkpoints here ran while other
writers had their turn.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

from .durable import sync_directory

log = logging.getLogger(__name__)

# The WAL files this process synced last, held open (so that an inode is not reused
# while it is remembered): a file not among them may be new, its directory entry
# unsynced. A few: a service writes one database.
_wal_files: dict[str, int] = {}
WAL_FILES_KEPT = 8
_wal_files_lock = threading.Lock()


def sync_wal(database: str) -> None:
    """Wait until the WAL file of a SQLite database is on the disk, with every
    transaction committed to it so far, and its directory entry the first time this
    process sees that file. Writers that wait at once share the disk's work: each
    flushes whatever was written by then. No WAL file: every transaction was
    checkpointed into the database, which SQLite syncs before it removes the WAL."""
    path = f"{database}-wal"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
        with _wal_files_lock:
            known = _wal_files.get(path)
            if known is not None and os.path.samestat(os.fstat(known), os.fstat(fd)):
                return
            sync_directory(os.path.dirname(os.path.abspath(path)))
            if known is not None:
                os.close(_wal_files.pop(path))
            elif len(_wal_files) >= WAL_FILES_KEPT:
                os.close(_wal_files.pop(next(iter(_wal_files))))
            _wal_files[path] = os.dup(fd)
    finally:
        os.close(fd)


class _Checkpointer:
    """One thread per process and database that checkpoints the WAL (``PASSIVE``: it
    waits for no reader or writer, and copies what no reader still needs) whenever a
    commit asked it to, one checkpoint at a time; asks made during a checkpoint are
    answered by the next one."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.asked = threading.Event()
        self.done = threading.Event()  # set after each checkpoint (for tests)
        self.thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self.database, isolation_level=None, timeout=0)
        except sqlite3.Error as error:  # (gone: the next commit starts another)
            log.warning("no checkpoints of %s: %s", self.database, error)
            with _checkpointers_lock:
                _checkpointers.pop((os.getpid(), self.database), None)
            return
        try:
            while self._asked_again():
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as error:  # (busy: another process checkpoints)
                    log.debug("checkpoint of %s skipped: %s", self.database, error)
                self.done.set()
        finally:
            connection.close()

    def _asked_again(self) -> bool:
        """Wait for an ask; after CHECKPOINTER_IDLE_SECONDS without one, end (the next
        commit starts another checkpointer)."""
        if not self.asked.wait(CHECKPOINTER_IDLE_SECONDS):
            with _checkpointers_lock:
                if not self.asked.is_set():
                    del _checkpointers[(os.getpid(), self.database)]
                    return False
        self.asked.clear()
        return True


CHECKPOINTER_IDLE_SECONDS = 10.0
_checkpointers: dict[tuple[int, str], _Checkpointer] = {}
_checkpointers_lock = threading.Lock()


def checkpoint_soon(database: str) -> _Checkpointer:
    """Ask this process's checkpointer of ``database`` (started at the first ask of a
    process: a forked worker starts its own) to checkpoint its WAL."""
    key = (os.getpid(), database)
    with _checkpointers_lock:
        checkpointer = _checkpointers.get(key)
        if checkpointer is None:
            checkpointer = _checkpointers[key] = _Checkpointer(database)
        checkpointer.asked.set()
    return checkpointer
