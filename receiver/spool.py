"""The outage spool: callback batches kept on the local disk while PostgreSQL cannot be
reached, until they are drained into the database (:mod:`receiver.drain`).

UMS retries a batch that got no 200 three times, 50 s apart, then drops it for good.
While the database is away, intake writes each authenticated, size-checked batch here
and answers 200 only once it is on the disk (``fsync`` of the file and of its
directory), so that an outage longer than UMS's retries loses nothing.

One file per batch, in ``SPOOL_DIR``::

    lock        flock: one appender (or counter) at a time; holds nothing
    drain.lock  flock: one drainer at a time, whichever process
    used        the bytes of the entries in ready/ and held/ (recounted at every drain)
    tmp/        entries being written: a writer killed mid-write leaves its file here,
                never in ready/, and its client got no 200 (so UMS sends it again)
    ready/      whole entries, oldest first by name: <arrival, ns>-<pid>-<random>.batch
    held/       entries a drain could not take (a fault of this service, not of the
                database): kept for an operator, retried by ``umstrack spool drain``

An entry is a JSON header line (channelkey, arrival time, and for a body that is no
batch the reason) followed by the body's bytes exactly as they arrived.

This module knows files only; what an entry becomes is :mod:`receiver.drain`'s part.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .durable import sync_directory

ENTRY_SUFFIX = ".batch"
# A file in tmp/ older than this is a writer's that died mid-write: its client never
# got a 200, so it is not kept (a write takes well under a second).
STALE_TMP_SECONDS = 300


class SpoolFull(Exception):
    """The spool cannot take a batch: it holds SPOOL_MAX_BYTES already, or its disk
    cannot be written (full, read-only, no permission)."""


class SpoolEntryError(ValueError):
    """A spooled file that cannot be read as an entry (its text is kept all the same)."""


@dataclass(frozen=True)
class Entry:
    """A spooled batch's file."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def arrived(self) -> datetime:
        """When its batch arrived, from the file name."""
        return datetime.fromtimestamp(int(self.name.split("-", 1)[0]) / 1e9, UTC)


@dataclass(frozen=True)
class SpooledBatch:
    """What an entry holds: the batch as it arrived, and the reason when it is no batch."""

    channelkey: str
    received_at: datetime
    body: bytes
    reason: str | None = None


@dataclass(frozen=True)
class SpoolStatus:
    """How much the spool holds, and since when."""

    directory: Path
    max_bytes: int
    entries: int
    bytes: int
    held: int
    oldest: datetime | None
    draining: bool

    def age_seconds(self, now: datetime) -> float:
        """How long the oldest entry has waited (0 when there is none)."""
        return max((now - self.oldest).total_seconds(), 0.0) if self.oldest else 0.0


class Spool:
    """A spool directory (made on first use, readable by its owner only)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.ready = directory / "ready"
        self.held = directory / "held"
        self.tmp = directory / "tmp"

    @classmethod
    def from_settings(cls, settings: Settings) -> Spool | None:
        """The configured spool; None with SQLite (the database is the local disk
        already: a write that fails answers 503) or with ``SPOOL_DIR=off``."""
        if settings.spool_dir is None or settings.database_url.startswith("sqlite"):
            return None
        return cls(settings.spool_dir, settings.spool_max_bytes)

    # --- writing --------------------------------------------------------------------

    def append(
        self, *, channelkey: str, received_at: datetime, body: bytes, reason: str | None = None
    ) -> Entry:
        """Keep a batch (or, with ``reason``, a body that is no batch) durably: when this
        returns, the entry is on the disk. Raises :class:`SpoolFull` past the bound."""
        header = {"channelkey": channelkey, "received_at": received_at.isoformat()}
        if reason is not None:
            header["reason"] = reason
        data = json.dumps(header, ensure_ascii=False).encode() + b"\n" + body
        arrival_ns = int(received_at.timestamp() * 1e9)
        name = f"{arrival_ns:020d}-{os.getpid()}-{secrets.token_hex(4)}{ENTRY_SUFFIX}"
        tmp = self.tmp / name
        try:
            self._make()
            with self._locked():
                used = self._used()
                if used + len(data) > self.max_bytes:
                    raise SpoolFull(
                        f"the spool is full: it holds {used} bytes, and {len(data)} more "
                        f"would pass SPOOL_MAX_BYTES ({self.max_bytes})"
                    )
                _write_synced(tmp, data)
                entry = Entry(self.ready / name)
                tmp.rename(entry.path)
                sync_directory(self.ready)
                self._set_used(used + len(data))
        except OSError as exc:  # no room on the disk, no permission, ...
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise SpoolFull(f"the spool cannot be written ({exc.strerror})") from exc
        return entry

    # --- reading and draining -------------------------------------------------------

    def entries(self, *, held: bool = False) -> list[Entry]:
        """The waiting entries, oldest first (or the held ones)."""
        folder = self.held if held else self.ready
        try:
            names = sorted(
                item.name for item in os.scandir(folder) if item.name.endswith(ENTRY_SUFFIX)
            )
        except FileNotFoundError:
            return []
        return [Entry(folder / name) for name in names]

    def waiting(self) -> bool:
        """Whether any entry waits in ready/ (cheap: stops at the first)."""
        try:
            with os.scandir(self.ready) as found:
                return any(item.name.endswith(ENTRY_SUFFIX) for item in found)
        except FileNotFoundError:
            return False

    def read(self, entry: Entry) -> SpooledBatch:
        """An entry's batch; raises :class:`SpoolEntryError` when its header cannot be
        read (the file stays as it is), FileNotFoundError when it is gone."""
        data = entry.path.read_bytes()
        line, newline, body = data.partition(b"\n")
        try:
            header = json.loads(line)
            return SpooledBatch(
                channelkey=str(header["channelkey"]),
                received_at=datetime.fromisoformat(header["received_at"]),
                body=body,
                reason=header.get("reason"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise SpoolEntryError(f"spool entry {entry.name} has no readable header") from exc

    def remove(self, entry: Entry) -> None:
        """Forget an entry that is in the database now."""
        size = _size(entry.path)
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()
        with self._locked():
            self._set_used(max(self._used() - size, 0))

    def hold(self, entry: Entry) -> Entry:
        """Set an entry aside (it stays counted): a drain goes on past it."""
        self.held.mkdir(mode=0o700, exist_ok=True)
        moved = Entry(self.held / entry.name)
        entry.path.rename(moved.path)
        sync_directory(self.held)
        return moved

    def release_held(self) -> int:
        """Put the held entries back in line for a drain; how many there were."""
        held = self.entries(held=True)
        for entry in held:
            entry.path.rename(self.ready / entry.name)
        if held:
            sync_directory(self.ready)
        return len(held)

    @contextlib.contextmanager
    def drain_turn(self, *, wait: bool = False) -> Iterator[bool]:
        """Hold the drainer's turn for the block: yields whether this process has it
        (without ``wait``, False at once when another drainer holds it). The turn is the
        kernel's flock: a drainer that dies lets the next one in."""
        self._make()
        fd = os.open(self.directory / "drain.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the flock

    def recount(self) -> None:
        """Count the bytes of the entries afresh (a process that died between writing
        an entry and counting it left the count short) and remove what writers that
        died mid-write left in tmp/."""
        cutoff = time.time() - STALE_TMP_SECONDS
        with contextlib.suppress(FileNotFoundError), os.scandir(self.tmp) as found:
            for item in found:
                with contextlib.suppress(FileNotFoundError):
                    if item.stat().st_mtime < cutoff:
                        os.unlink(item.path)
        with self._locked():
            self._set_used(self._scan())

    # --- status -----------------------------------------------------------------------

    def status(self) -> SpoolStatus:
        """What the spool holds now."""
        ready = self.entries()
        return SpoolStatus(
            directory=self.directory,
            max_bytes=self.max_bytes,
            entries=len(ready),
            bytes=self._counted() if self.directory.exists() else 0,
            held=len(self.entries(held=True)),
            oldest=ready[0].arrived if ready else None,
            draining=self._draining(),
        )

    def _draining(self) -> bool:
        if not self.directory.exists():
            return False
        with self.drain_turn(wait=False) as mine:
            return not mine

    # --- the count of bytes -----------------------------------------------------------

    def _make(self) -> None:
        for folder in (self.directory, self.ready, self.tmp):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _used(self) -> int:
        """The counted bytes (call with the lock held); counted afresh if unknown."""
        try:
            return int((self.directory / "used").read_text())
        except (FileNotFoundError, ValueError):
            used = self._scan()
            self._set_used(used)
            return used

    def _counted(self) -> int:
        """The counted bytes, read without the lock (and without writing the count)."""
        try:
            return int((self.directory / "used").read_text())
        except (FileNotFoundError, ValueError):
            return self._scan()

    def _set_used(self, used: int) -> None:
        # Not synced: a count lost with the machine is recounted at the next drain.
        (self.directory / "used").write_text(str(used))

    def _scan(self) -> int:
        return sum(_size(entry.path) for held in (False, True) for entry in self.entries(held=held))


def _write_synced(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
