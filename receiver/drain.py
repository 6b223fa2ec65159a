"""Draining the outage spool into the database, through the intake every batch takes.

A drain holds the spool's drainer turn (one drainer at a time, whichever process), and
takes the entries oldest first, each in a transaction of its own: the same checks,
quarantine, duplicate detection and stage rule as a batch that just arrived. An entry is
removed only after its transaction committed. A drainer killed in between leaves the
entry, and the next drain takes it again: its records are then duplicates, stored once.

Every gunicorn worker runs a :class:`Drainer` thread that looks at the spool every
second and drains it as soon as the database answers; ``umstrack spool drain`` does the
same by hand.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from . import metrics
from .db import write_transaction
from .errors import database_unreachable, safe_description
from .intake import (
    BadBody,
    StoredBatch,
    batch_of,
    body_text,
    check_batch,
    quarantine,
    store_batch_counted,
)
from .spool import Entry, Spool, SpooledBatch, SpoolEntryError

log = logging.getLogger(__name__)

# How often a worker's drainer looks at the spool (and so how soon after the database
# is back it starts draining).
DRAIN_INTERVAL = 1.0
# How often a drainer waiting for the database says how much waits.
WAITING_LOG_INTERVAL = 30.0


@dataclass
class Drained:
    """What a drain did."""

    entries: int = 0
    records: int = 0
    # Records by what became of them: stored, duplicates, quarantined.
    outcomes: Counter[str] = field(default_factory=Counter)
    # Why it stopped before the spool was empty: the database unavailable, or another
    # drainer at work.
    stopped: str | None = None


def drain(
    engine: Engine, spool: Spool, *, wait: bool = False, stop: threading.Event | None = None
) -> Drained:
    """Drain the spool into the database until it is empty, the database fails or
    ``stop`` is set (checked between entries).

    Without ``wait``, returns at once (``stopped`` says so) when another drainer holds
    the turn. An entry that fails for any reason but the database is set aside in held/,
    never dropped."""
    done = Drained()
    if not spool.directory.exists():
        return done  # nothing was ever spooled
    with spool.drain_turn(wait=wait) as mine:
        if not mine:
            done.stopped = "another drainer is at work"
            return done
        started = time.monotonic()
        while entries := spool.entries():
            for entry in entries:
                if stop is not None and stop.is_set():
                    done.stopped = "stopped"
                    return done
                try:
                    _take(engine, spool, entry, done)
                except DBAPIError as exc:
                    if not database_unreachable(exc):
                        _hold(spool, entry, safe_description(exc))
                        continue
                    done.stopped = f"the database is unavailable ({safe_description(exc)})"
                    return done
                except Exception as exc:  # noqa: BLE001 (kept aside, never dropped)
                    _hold(spool, entry, f"{type(exc).__name__}: {exc}")
        # The database took every entry: a good time to count the bytes afresh.
        spool.recount()
        if done.entries:
            log.info(
                "spool drained: %d entries, %d records (%s) in %.1f s",
                done.entries,
                done.records,
                ", ".join(f"{n} {outcome}" for outcome, n in sorted(done.outcomes.items())),
                time.monotonic() - started,
            )
    return done


def _take(engine: Engine, spool: Spool, entry: Entry, done: Drained) -> None:
    """Store one entry in a transaction, then forget it."""
    try:
        batch = spool.read(entry)
    except FileNotFoundError:
        return  # taken already (by a drainer that had the turn before this one)
    except SpoolEntryError as exc:
        # Kept all the same, as what it is: text that arrived and cannot be read.
        batch = SpooledBatch("", entry.arrived, entry.path.read_bytes(), reason=str(exc))
    with write_transaction(engine) as session:
        taken = _store(session, batch)
    spool.remove(entry)
    done.entries += 1
    if taken is None:
        done.outcomes["quarantined"] += 1
        return
    records, stored = taken
    result = stored.result
    done.records += result.received
    done.outcomes.update(
        stored=result.stored, duplicates=result.duplicates, quarantined=result.quarantined
    )
    metrics.count_outcome(
        channelkey=batch.channelkey,
        received=metrics.tally(records),
        stored=stored.stored,
        quarantined=stored.quarantined,
    )


def _store(session: Session, batch: SpooledBatch) -> tuple[list[Any], StoredBatch] | None:
    """Take a spooled batch in as intake takes a live one: its records and what became
    of them; None for a body that is no batch, quarantined whole with its reason."""
    reason = batch.reason
    if reason is None:
        try:
            records = batch_of(batch.body)
        except BadBody as exc:
            reason = str(exc)
        else:
            checked = check_batch(records, channelkey=batch.channelkey)
            stored = store_batch_counted(
                session=session,
                channelkey=batch.channelkey,
                batch=checked,
                received_at=batch.received_at,
            )
            return records, stored
    quarantine(
        session=session,
        channelkey=batch.channelkey or None,
        items=[(reason, body_text(batch.body))],
        received_at=batch.received_at,
    )
    return None


def _hold(spool: Spool, entry: Entry, why: str) -> None:
    log.error("spool entry %s set aside in held/: %s", entry.name, why)
    with contextlib.suppress(FileNotFoundError):  # taken meanwhile
        spool.hold(entry)


class Drainer:
    """A worker's background drainer: every DRAIN_INTERVAL seconds, if the spool holds
    anything, it drains (when no other drainer is at work and the database answers)."""

    def __init__(self, engine: Engine, spool: Spool, *, interval: float = DRAIN_INTERVAL):
        self.engine = engine
        self.spool = spool
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once; again after :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="umstrack-drainer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, after the entry it is taking."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        said_at: float | None = None  # when it last said the spool waits
        while not self._stop.wait(self.interval):
            try:
                if not self.spool.waiting():
                    said_at = None
                    continue
                done = drain(self.engine, self.spool, stop=self._stop)
            except Exception:  # noqa: BLE001 (the thread must outlive any one failure)
                log.exception("spool drain failed")
                continue
            if done.stopped and done.stopped.startswith("the database"):
                # Said when the wait begins, then every WAITING_LOG_INTERVAL, not at
                # every try: how much waits, and for how long.
                now = time.monotonic()
                if said_at is None or now - said_at >= WAITING_LOG_INTERVAL:
                    said_at = now
                    status = self.spool.status()
                    log.warning(
                        "spool waits for the database: %d entries, %d bytes, oldest %.0f s; %s",
                        status.entries,
                        status.bytes,
                        status.age_seconds(datetime.now(UTC)),
                        done.stopped,
                    )
