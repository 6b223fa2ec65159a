"""``umstrack bench``: drive callback intake like a big broadcast and print figures.

N posters (threads, one keep-alive connection each) post 100-record batches of
one broadcast's callbacks as fast as the server acknowledges them. Prints
events/s and acknowledgement latency percentiles. Without ``--url`` it starts
``umstrack serve`` itself on a free loopback port.

With ``--during-purge N``: intake alone, then intake while a purge removes N expired
events with their targets; prints both rates and their ratio. The expired set is
stored through the intake itself, as the callbacks of broadcasts of 60 days ago (1,000
recipients each, over three days); on PostgreSQL those days get their partitions
first, as they would have had when their callbacks came.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from sender.http import basic_auth_header

from .config import Settings
from .db import make_engine, write_transaction
from .intake import record_batch
from .local import running_server
from .partitions import ensure_partitions, today
from .retention import PurgeResult, purge

log = logging.getLogger(__name__)

BENCH_CHANNEL = "benchchannel0000000000ab:benchsecret00000000000000"
# Lifecycle of one recipient of a broadcast to the APP channel.
_LIFECYCLE = ((0, 0), (2, 1), (4, 1), (6, 1))


@dataclass
class Figures:
    """What the timed part of a run measured."""

    seconds: float = 0.0
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def report(self) -> str:
        lines = [
            f"batches      {self.batches} in {self.seconds:.2f} s "
            f"({self.batches / self.seconds:.0f} batches/s)",
            f"events/s     {self.stored / self.seconds:,.0f} stored "
            f"({self.stored} stored, {self.duplicates} duplicates)",
            f"ack latency  p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms",
        ]
        if self.errors:
            lines.append(f"errors       {self.errors}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BenchOptions:
    """What to measure: posters, batches and their size, and the warm-up."""

    posters: int = 4
    batches: int = 3000
    batch_size: int = 100
    warmup: int = 100


def run(url: str, channel: str, options: BenchOptions) -> Figures:
    """Post ``options.warmup`` batches, then time ``options.batches`` more; print the
    figures as it goes and return those of the timed part."""
    channelkey = channel.split(":", 1)[0]
    auth = basic_auth_header(*channel.split(":", 1))
    msgid = f"v:1t:{int(time.time())}p:{os.getpid()}n:{time.monotonic_ns() % 10**6}"
    total = options.warmup + options.batches
    log.info("preparing %d batches of %d records for %s", total, options.batch_size, msgid)
    bodies = [
        _batch(msgid, channelkey, i * options.batch_size, options.batch_size) for i in range(total)
    ]
    _post_all(url, auth, bodies[: options.warmup], options.posters)
    return _post_all(url, auth, bodies[options.warmup :], options.posters)


def _batch(msgid: str, channelkey: str, start: int, size: int) -> bytes:
    now = int(time.time())
    records = []
    for n in range(start, start + size):
        recipient, step = divmod(n, len(_LIFECYCLE))
        type_, sender = _LIFECYCLE[step]
        record: dict[str, Any] = {
            "type": type_,
            "channelkey": channelkey,
            "msgid": msgid,
            "userid": f"user{recipient}",
            "sender": sender,
            "sent_time": now + step,
            "params": {"campaign": "bench"},
        }
        if sender == 1:
            record.update(sender_id=f"1104a8979{recipient:010d}", app_platform=0, app_sender=1)
        records.append(record)
    return json.dumps(records).encode()


def _post_all(
    url: str, auth: str, bodies: list[bytes], posters: int, until: threading.Event | None = None
) -> Figures:
    """Post ``bodies`` from ``posters`` threads (all of them, or until ``until`` is set)."""
    figures = Figures()
    if not bodies:
        return figures
    parsed = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    queue = iter(bodies)

    def poster() -> None:
        conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=30
        )
        while True:
            with lock:
                body = None if until is not None and until.is_set() else next(queue, None)
            if body is None:
                break
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    "/callbacks/ums",
                    body,
                    {
                        "Authorization": auth,
                        "Content-Type": "application/json",
                    },
                )
                response = conn.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status, answer = 0, type(exc).__name__.encode()
            elapsed = time.perf_counter() - started
            with lock:
                figures.latencies.append(elapsed)
                figures.batches += 1
                if status == 200:
                    counts = json.loads(answer)
                    figures.stored += counts["stored"]
                    figures.duplicates += counts["duplicates"]
                else:
                    key = str(status or answer.decode())
                    figures.errors[key] = figures.errors.get(key, 0) + 1
        conn.close()

    threads = [threading.Thread(target=poster) for _ in range(posters)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures.seconds = time.perf_counter() - started
    return figures


@contextmanager
def local_server(database_url: str | None, channel: str, workers: int | None) -> Iterator[str]:
    """``umstrack serve`` on a free loopback port, on ``database_url`` (default: a
    temporary SQLite file), with ``channel`` configured; yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "DATABASE_URL": database_url or f"sqlite:///{tmp}/bench.db",
            "UMS_CHANNELS": channel,
            "GUNICORN_ACCESSLOG": "",
        }
        args = ("--workers", str(workers)) if workers else ()
        with running_server(env, args=args) as url:
            yield url


EXPIRED_DAYS_AGO = 60
KEEP_DAYS = 30
RECIPIENTS_PER_MESSAGE = 1000


@dataclass
class PurgeFigures:
    """Intake alone, intake during a purge, and the purge."""

    alone: Figures
    during: Figures
    purge: PurgeResult

    def report(self) -> str:
        alone = self.alone.stored / self.alone.seconds
        during = self.during.stored / self.during.seconds
        return "\n".join(
            [
                "intake alone",
                self.alone.report(),
                "intake during the purge",
                self.during.report(),
                f"purge        {self.purge.events} events, {self.purge.targets} targets and "
                f"{self.purge.messages} messages deleted, "
                f"{len(self.purge.partitions_dropped)} partitions dropped, "
                f"in {self.purge.seconds:.2f} s",
                f"ratio        {during / alone:.2f} (events/s during the purge / alone)",
            ]
        )


def fill_expired(engine: Engine, channelkey: str, events: int) -> None:
    """Store ``events`` callback events of broadcasts of 60 days ago."""
    first = today() - EXPIRED_DAYS_AGO
    for day in range(first, first + 3):
        ensure_partitions(engine, day=day)
    size = RECIPIENTS_PER_MESSAGE
    for n, start in enumerate(range(0, events, size)):
        day = first + n % 3
        arrived = datetime.fromtimestamp(day * 86400, UTC) + timedelta(hours=12)
        records: list[dict[str, Any]] = [
            {
                "type": 4,
                "channelkey": channelkey,
                "msgid": f"expired-{n}",
                "userid": f"user{i}",
                "sender": 1,
                "sent_time": int(arrived.timestamp()),
            }
            for i in range(min(size, events - start))
        ]
        with write_transaction(engine) as session:
            record_batch(
                session=session, channelkey=channelkey, records=records, received_at=arrived
            )


def run_during_purge(
    url: str, channel: str, options: BenchOptions, database_url: str, expired: int
) -> PurgeFigures:
    """Intake alone for ``options.batches`` batches, then as many batches more while a
    purge removes ``expired`` expired events (posting stops when the purge ends)."""
    channelkey = channel.split(":", 1)[0]
    engine = make_engine(Settings(database_url=database_url))
    try:
        log.info("storing %d expired events", expired)
        fill_expired(engine, channelkey, expired)
        auth = basic_auth_header(*channel.split(":", 1))
        stamp = f"{int(time.time())}"
        total = options.warmup + 2 * options.batches
        bodies = [
            _batch(f"v:1t:{stamp}p:purge", channelkey, i * options.batch_size, options.batch_size)
            for i in range(total)
        ]
        _post_all(url, auth, bodies[: options.warmup], options.posters)
        alone = _post_all(
            url, auth, bodies[options.warmup : options.warmup + options.batches], options.posters
        )
        finished = threading.Event()
        results: list[PurgeResult] = []

        def purging() -> None:
            try:
                results.append(purge(engine, days=KEEP_DAYS))
            finally:
                finished.set()

        purger = threading.Thread(target=purging)
        purger.start()
        during = _post_all(
            url, auth, bodies[options.warmup + options.batches :], options.posters, until=finished
        )
        purger.join()
        return PurgeFigures(alone=alone, during=during, purge=results[0])
    finally:
        engine.dispose()
