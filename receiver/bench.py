"""``umstrack bench``: drive callback intake and print figures.

N posters (threads, one keep-alive connection each) post 100-record batches of a
workload (:mod:`receiver.bench_workload`) as fast as the server
acknowledges them. Prints events/s, acknowledgement latency percentiles and the ratio
to the database's own bulk-load rate (:mod:`receiver.ceiling`), then checks what was
stored. Without ``--url`` it starts ``umstrack serve`` itself on free loopback ports
(one server or several on the one database).

With ``--during-purge N``: see :mod:`receiver.bench_purge`; with
``--compare-instances``: :mod:`receiver.bench_compare`.
"""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import logging
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sender.http import basic_auth_header
from sender.ums.protocol import STATUS_BY_TYPE

from . import ceiling
from .bench_workload import Workload as Workload  # its users import it from here too
from .ceiling import Ceiling
from .config import Settings
from .db import make_engine
from .local import running_server

log = logging.getLogger(__name__)

BENCH_CHANNEL = "benchchannel0000000000ab:benchsecret00000000000000"


@dataclass
class Figures:
    """What the timed part of a run measured (requests that ended inside it)."""

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

    @property
    def rate(self) -> float:
        """Events stored per second."""
        return self.stored / self.seconds if self.seconds else float("nan")

    def report(self, ceiling: float | None = None) -> str:
        ratio = f" = {self.rate / ceiling:.2f} of the ceiling" if ceiling else ""
        lines = [
            f"batches      {self.batches} in {self.seconds:.2f} s "
            f"({self.batches / self.seconds:.0f} batches/s)",
            f"events/s     {self.rate:,.0f} stored{ratio} "
            f"({self.stored} stored, {self.duplicates} duplicates)",
            f"ack latency  p50 {self.percentile(50) * 1000:.1f} ms, "
            f"p99 {self.percentile(99) * 1000:.1f} ms, max {max(self.latencies) * 1000:.1f} ms",
        ]
        if self.errors:
            lines.append(f"errors       {self.errors}")
        return "\n".join(lines)


@dataclass(frozen=True)
class BenchOptions:
    """What to measure: the workload, posters, batch size, and for how long: ``seconds``
    after ``warmup`` seconds, or exactly ``batches`` batches after the warm-up."""

    posters: int = 4
    batch_size: int = 100
    seconds: float = 60.0
    warmup: float = 5.0
    batches: int | None = None
    workload: str = "broadcast"


def run(urls: Sequence[str], channel: str, options: BenchOptions) -> tuple[Figures, Workload]:
    """Post the workload's batches from ``options.posters`` posters, spread over
    ``urls`` (instances of one service): ``options.warmup`` seconds untimed, then
    ``options.seconds`` (or ``options.batches`` batches) timed. Returns the figures, and
    the workload (what it made, to check against what was stored)."""
    channelkey = channel.split(":", 1)[0]
    auth = basic_auth_header(*channel.split(":", 1))
    workload = Workload(options.workload, channelkey, options.batch_size, f"{int(time.time())}")
    log.info(
        "posting %s batches of %d records for %.0f s, then timing %s",
        options.workload,
        options.batch_size,
        options.warmup,
        f"{options.batches} batches" if options.batches else f"{options.seconds:.0f} s",
    )
    window = _Window(
        time.monotonic() + options.warmup,
        None if options.batches else options.seconds,
        options.batches,
    )
    numbers = itertools.count()  # next() on it is atomic: each batch is posted once
    _posters(urls, auth, lambda: workload.body(next(numbers)), options.posters, window)
    return window.finish(), workload


class _Window:
    """The timed part of a run: from ``opens`` (monotonic) for ``seconds``, or until
    ``batches`` batches ended in it; counts only what ended inside it."""

    def __init__(self, opens: float, seconds: float | None, batches: int | None) -> None:
        self.opens, self.seconds, self.batches = opens, seconds, batches
        self.figures = Figures()
        self.lock = threading.Lock()
        self.closed = threading.Event()

    def note(self, started: float, ended: float, status: int, answer: bytes) -> None:
        with self.lock:
            if started < self.opens or self.closed.is_set():
                return
            if self.seconds is not None and ended > self.opens + self.seconds:
                self.closed.set()
                return
            figures = self.figures
            figures.latencies.append(ended - started)
            figures.batches += 1
            figures.seconds = ended - self.opens
            if status == 200:
                counts = json.loads(answer)
                figures.stored += counts.get("stored", 0)
                figures.duplicates += counts.get("duplicates", 0)
            else:
                key = str(status or answer.decode())
                figures.errors[key] = figures.errors.get(key, 0) + 1
            if self.batches is not None and figures.batches >= self.batches:
                self.closed.set()

    def finish(self) -> Figures:
        if self.seconds is not None:
            self.figures.seconds = self.seconds
        return self.figures


def post_all(
    url: str, auth: str, bodies: list[bytes], posters: int, until: threading.Event | None = None
) -> Figures:
    """Post ``bodies`` from ``posters`` threads (all of them, or until ``until`` is set);
    every one is timed."""
    window = _Window(time.monotonic(), None, None)
    queue = iter(bodies)
    lock = threading.Lock()

    def body() -> bytes | None:
        with lock:
            return None if until is not None and until.is_set() else next(queue, None)

    started = time.monotonic()
    _posters([url], auth, body, posters, window)
    window.figures.seconds = time.monotonic() - started
    return window.figures


def post_each(
    urls: Sequence[str],
    auth: str,
    body: Callable[[int], bytes],
    count: int | None,
    posters: int,
    *,
    seconds: float | None = None,
) -> Figures:
    """Post ``body(0)`` to ``body(count - 1)`` (or on, while ``seconds`` last), each
    exactly once, from ``posters`` threads spread over ``urls``; every one is timed."""
    window = _Window(time.monotonic(), None, None)
    numbers = itertools.count()  # next() on it is atomic: each batch is posted once
    until = None if seconds is None else time.monotonic() + seconds

    def next_body() -> bytes | None:
        index = next(numbers)
        if (count is not None and index >= count) or (until and time.monotonic() > until):
            return None
        return body(index)

    started = time.monotonic()
    _posters(urls, auth, next_body, posters, window)
    window.figures.seconds = time.monotonic() - started
    return window.figures


def _posters(
    urls: Sequence[str],
    auth: str,
    body: Callable[[], bytes | None],
    posters: int,
    window: _Window,
) -> None:
    """Post ``body()`` after ``body()`` from ``posters`` threads, one keep-alive connection
    each (to the URLs in turn), until it gives None or the window closes."""
    headers = {"Authorization": auth, "Content-Type": "application/json"}

    def poster(url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(
            parsed.hostname or "127.0.0.1", parsed.port or 80, timeout=30
        )
        while not window.closed.is_set():
            data = body()
            if data is None:
                break
            started = time.monotonic()
            try:
                conn.request("POST", "/callbacks/ums", data, headers)
                response = conn.getresponse()
                answer = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status, answer = 0, type(exc).__name__.encode()
            window.note(started, time.monotonic(), status, answer)
        conn.close()

    threads = [threading.Thread(target=poster, args=(urls[n % len(urls)],)) for n in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


# Rows the ceiling loads: a couple of seconds' worth, so that it is measured beside the run.
CEILING_ROWS = {"postgresql": 200_000, "sqlite": 100_000}


def measure_ceiling(database_url: str, channel: str, options: BenchOptions) -> Ceiling:
    """The database's own bulk-load rate of the workload's rows into a table shaped like
    event (:mod:`receiver.ceiling`)."""
    engine = make_engine(Settings(database_url=database_url), maintenance=True)
    try:
        channelkey = channel.split(":", 1)[0]
        workload = Workload(options.workload, channelkey, options.batch_size, "ceiling")
        wanted = CEILING_ROWS.get(engine.dialect.name, CEILING_ROWS["sqlite"])
        # Each record once: a record posted again (the mixed workload) is no new row.
        records = list(
            {
                json.dumps(record, sort_keys=True): record
                for index in range(max(wanted // options.batch_size, 1))
                for record in workload.records(index)
            }.values()
        )
        return ceiling.measure(engine, ceiling.event_rows(records, channelkey=channelkey))
    finally:
        engine.dispose()


def ceiling_report(ceilings: Sequence[Ceiling]) -> tuple[float | None, str]:
    """The mean rate of the ceilings measured before and after a run (None when none
    was), and the line that says so."""
    if not ceilings:
        return None, "ceiling      not measured (give --database-url with --url)"
    rate = sum(c.rate for c in ceilings) / len(ceilings)
    return rate, (
        f"ceiling      {ceilings[0].how} {rate:,.0f} rows/s ("
        + ", ".join(f"{c.rate:,.0f}" for c in ceilings)
        + f" before and after; {ceilings[0].rows:,} rows into a table shaped like event)"
    )


@contextmanager
def local_server(database_url: str | None, channel: str, workers: int | None) -> Iterator[str]:
    """``umstrack serve`` on a free loopback port, on ``database_url`` (default: a
    temporary SQLite file), with ``channel`` configured; yields its base URL."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_servers(
            database_url or f"sqlite:///{tmp}/bench.db", channel, workers, instances=1
        ) as urls,
    ):
        yield urls[0]


@contextmanager
def local_servers(
    database_url: str, channel: str, workers: int | None, *, instances: int
) -> Iterator[list[str]]:
    """``instances`` servers of one service (``umstrack serve`` each, on ``database_url``)
    on free loopback ports, started one after the other (the first migrates); yields
    their base URLs."""
    env = {"DATABASE_URL": database_url, "UMS_CHANNELS": channel, "GUNICORN_ACCESSLOG": ""}
    args = ("--workers", str(workers)) if workers else ()
    with contextlib.ExitStack() as servers:
        yield [servers.enter_context(running_server(env, args=args)) for _ in range(instances)]


@dataclass(frozen=True)
class Checked:
    """What a run left in the database against what its batches must leave."""

    events: int
    expected_events: int
    targets: Counter[int]
    expected_targets: Counter[int]

    @property
    def holds(self) -> bool:
        return (self.events, self.targets) == (self.expected_events, self.expected_targets)

    def report(self) -> str:
        found = ", ".join(f"{n:,} {STATUS_BY_TYPE[t]}" for t, n in sorted(self.targets.items()))
        if self.holds:
            return (
                f"checked      {self.events:,} events, each stored once; targets {found}, "
                "as the stage rule puts them"
            )
        wanted = ", ".join(
            f"{n:,} {STATUS_BY_TYPE[t]}" for t, n in sorted(self.expected_targets.items())
        )
        return (
            f"MISMATCH     {self.events:,} events stored of {self.expected_events:,} posted; "
            f"targets {found}, expected {wanted}"
        )


def check(database_url: str, workload: Workload) -> Checked:
    """Compare what the run's messages hold with what its batches must leave."""
    engine = make_engine(Settings(database_url=database_url), maintenance=True)
    try:
        events, targets = workload.stored(engine)
    finally:
        engine.dispose()
    expected_events, expected_targets = workload.expected()
    return Checked(events, expected_events, targets, expected_targets)
