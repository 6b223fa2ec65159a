"""``umstrack bench read``: how reads grow with the volume stored.

It fills a database, through the intake itself (in this process, many records a
transaction), with one big broadcast among many small messages, and at each size
asked for (1, 3 and 10 million events by default) measures reads over HTTP against a
server it starts, one request at a time on one keep-alive connection: the broadcast's
summary (with its funnel, top errors and stage timings), pages of its timeline and of
its targets (every one, and only the failed), and the message list filtered by a
current status, by a param and by creation time. Beside them it times ``/healthz`` on
the same connection, the cost of a request that reads nothing, and prints each read's
median as a multiple of it: a shared machine's load moves the absolute times, the
multiple far less.

The data is the same for every database and size: the broadcast first, then small
messages numbered from 0, each added once. A database that holds some already is
grown, never reloaded.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import statistics
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, func, select

from sender.ums.protocol import StatusType

from .db import write_transaction
from .intake import record_batch
from .models import Message
from .store import KEPT, MESSAGE

log = logging.getLogger(__name__)

READ_CHANNELKEY = "benchread000000000000000"
READ_TOKEN = "bench-read-token"
BROADCAST = "bench-read:broadcast"
SMALL_PREFIX = "bench-read:m:"
SMALL_RECIPIENTS = 20
CHUNK_RECORDS = 1000
# A delivery failure's codes, so that the top errors have several to rank.
_FAILURES = ((4001, "device offline for too long"), (4002, "app uninstalled"), (4003, "quota"))


def _lifecycle(msgid: str, n: int, params: dict[str, Any], now: int) -> list[dict[str, Any]]:
    """Recipient ``n``'s records: valid (UMS), submitted on the app channel, then most
    delivered (a third of those clicked), some failing delivery, a few still waiting,
    and one in 200 an invalid target."""
    base = {"channelkey": READ_CHANNELKEY, "msgid": msgid, "userid": f"u{n}", "params": params}
    if n % 200 == 199:
        return [{**base, "type": int(StatusType.TARGET_INVALID), "sender": 0, "sent_time": now,
                 "error": {"code": 1002, "message": "no such user"}}]  # fmt: skip
    app = {**base, "sender": 1, "sender_id": f"reg{n:09d}", "app_platform": n % 2, "app_sender": 1}
    records = [
        {**base, "type": int(StatusType.TARGET_VALID), "sender": 0, "sent_time": now},
        {**app, "type": int(StatusType.SUBMITTED), "sent_time": now + 1},
    ]
    fate = n % 20
    if fate == 0:  # still waiting for its delivery report
        return records
    if fate in (1, 2):
        code, text = _FAILURES[n % len(_FAILURES)]
        failed = {"type": int(StatusType.DELIVERY_FAILED), "error": {"code": code, "message": text}}
        return [*records, {**app, **failed, "sent_time": now + 5 + n % 7}]
    records.append({**app, "type": int(StatusType.DELIVERED), "sent_time": now + 2 + n % 11})
    if n % 3 == 0:
        records.append({**app, "type": int(StatusType.CLICKED), "sent_time": now + 30 + n % 300})
    return records


def broadcast_records(targets: int, now: int) -> Iterator[dict[str, Any]]:
    """The broadcast's callbacks, recipient after recipient."""
    for n in range(targets):
        yield from _lifecycle(BROADCAST, n, {"campaign": "bench-read"}, now)


def small_message(index: int, now: int) -> list[dict[str, Any]]:
    """Small message ``index``'s callbacks (``SMALL_RECIPIENTS`` recipients)."""
    msgid, params = f"{SMALL_PREFIX}{index:09d}", {"order_id": f"o{index}", "campaign": "small"}
    return [r for n in range(SMALL_RECIPIENTS) for r in _lifecycle(msgid, n, params, now)]


def small_messages(first: int, last: int, now: int) -> list[dict[str, Any]]:
    """Small messages ``first`` to ``last - 1``'s callbacks."""
    return [record for index in range(first, last) for record in small_message(index, now)]


EVENTS_PER_SMALL = len(small_message(0, 0))


@dataclass
class Stored:
    """How much of the data set a database holds: the broadcast (its targets, or 0)
    and the first ``small`` small messages."""

    broadcast: int
    small: int
    broadcast_events: int

    @property
    def events(self) -> int:
        return self.broadcast_events + self.small * EVENTS_PER_SMALL


def stored(engine: Engine, broadcast_targets: int) -> Stored:
    """What the database holds of the data set (it is always added in order)."""
    with engine.connect() as conn:
        has_broadcast = conn.execute(
            select(func.count()).where(MESSAGE.c.msgid == BROADCAST)
        ).scalar_one()
        small = conn.execute(
            select(func.count()).where(MESSAGE.c.msgid.startswith(SMALL_PREFIX))
        ).scalar_one()
    events = sum(1 for _ in broadcast_records(broadcast_targets, 0)) if has_broadcast else 0
    return Stored(broadcast_targets if has_broadcast else 0, small, events)


def grow(engine: Engine, have: Stored, events: int, broadcast_targets: int) -> Stored:
    """Add to the data set until it holds at least ``events`` events: the broadcast
    first, then small messages, through the intake in transactions of about
    ``CHUNK_RECORDS`` records, from two threads (the database works while Python
    checks the next chunk)."""
    now = int(time.time())
    chunks: list[Callable[[], list[dict[str, Any]]]] = []
    if not have.broadcast:
        records = list(broadcast_records(broadcast_targets, now))
        for start in range(0, len(records), CHUNK_RECORDS):
            chunks.append(functools.partial(list, records[start : start + CHUNK_RECORDS]))
        have = Stored(broadcast_targets, have.small, len(records))
    per_chunk = max(CHUNK_RECORDS // EVENTS_PER_SMALL, 1)
    wanted = max(0, -(-(events - have.events) // EVENTS_PER_SMALL))
    for first in range(have.small, have.small + wanted, per_chunk):
        last = min(first + per_chunk, have.small + wanted)
        chunks.append(functools.partial(small_messages, first, last, now))
    _store_chunks(engine, chunks)
    return Stored(have.broadcast, have.small + wanted, have.broadcast_events)


def _store_chunks(engine: Engine, chunks: Sequence[Callable[[], list[dict[str, Any]]]]) -> None:
    next_chunk = iter(range(len(chunks)))
    lock = threading.Lock()
    started, failures = time.monotonic(), []

    def work() -> None:
        while True:
            with lock:
                index = next(next_chunk, None)
            if index is None:
                return
            try:
                with write_transaction(engine) as session:
                    record_batch(
                        session=session,
                        channelkey=READ_CHANNELKEY,
                        records=chunks[index](),
                        received_at=datetime.now(UTC),
                    )
            except Exception as exc:  # noqa: BLE001 - reported by the caller
                failures.append(exc)
                return
            if index % 500 == 499:
                log.info("loaded %d of %d chunks in %.0f s", index + 1, len(chunks),
                         time.monotonic() - started)  # fmt: skip

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


@dataclass(frozen=True)
class Timing:
    """One read's latencies (seconds), requests made one after the other."""

    name: str
    goal: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class Reader:
    """One keep-alive connection to a server, with the bench's bearer token."""

    def __init__(self, url: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port)
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> tuple[float, Any]:
        started = time.perf_counter()
        self.connection.request("GET", path, headers=self.headers)
        response = self.connection.getresponse()
        body = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        return took, json.loads(body)

    def close(self) -> None:
        self.connection.close()


def _quoted(msgid: str) -> str:
    return urllib.parse.quote(msgid, safe="")


def _pages(reader: Reader, path: str, count: int) -> list[float]:
    """``count`` pages of a list, following its cursors (from the start again at its end)."""
    took: list[float] = []
    cursor: str | None = None
    while len(took) < count:
        joiner = "&" if "?" in path else "?"
        page = f"{path}{joiner}cursor={urllib.parse.quote(cursor)}" if cursor else path
        seconds, body = reader.get(page)
        took.append(seconds)
        cursor = body.get("next_cursor")
    return took


def since_for(engine: Engine, held: Stored) -> datetime:
    """A ``since`` that a thousand small messages match (the newest), or all of them."""
    index = max(held.small - 1_000, 0)
    with engine.connect() as conn:
        moment = conn.execute(
            select(MESSAGE.c.created_at).where(MESSAGE.c.msgid == f"{SMALL_PREFIX}{index:09d}")
        ).scalar_one_or_none()
    return moment or datetime.now(UTC)


# Summaries timed with nothing kept (each about as long as the broadcast's figures take).
COMPUTED_REPEATS = 3


def measure(url: str, held: Stored, repeats: int, since: datetime, engine: Engine) -> list[Timing]:
    """Each read ``repeats`` times (pages: four or two times as many), after one
    untimed round (the first request of each kind plans and caches); ``since``: the
    list's time filter. The broadcast's summary is timed as read (its figures kept
    since the untimed round) and also computed, its kept figures removed from
    ``engine`` before each request: what the first read after new events costs."""
    reader = Reader(url, READ_TOKEN)
    m = _quoted(BROADCAST)
    since_text = urllib.parse.quote(since.isoformat())
    orders = [f"o{(i * 7919) % max(held.small, 1)}" for i in range(repeats)]

    def each(paths: Sequence[str]) -> Callable[[], list[float]]:
        return lambda: [reader.get(path)[0] for path in paths]

    def pages(path: str, count: int) -> Callable[[], list[float]]:
        return lambda: _pages(reader, path, count)

    def computed(path: str) -> Callable[[], list[float]]:
        def timed() -> list[float]:
            took = []
            for _ in range(COMPUTED_REPEATS):
                with write_transaction(engine) as session:
                    session.execute(delete(KEPT).where(KEPT.c.msgid == BROADCAST))
                took.append(reader.get(path)[0])
            return took

        return timed

    reads = [
        ("healthz (reference)", "", each(["/healthz"] * repeats)),
        ("broadcast summary", "median <= 50 ms", each([f"/api/messages/{m}"] * repeats)),
        ("summary, computed", "(nothing kept)", computed(f"/api/messages/{m}")),
        ("timeline pages", "p99 <= 10 ms",
         pages(f"/api/messages/{m}/timeline?limit=100", 4 * repeats)),
        ("targets pages", "p99 <= 10 ms",
         pages(f"/api/messages/{m}/targets?limit=100", 4 * repeats)),
        ("failed targets pages", "p99 <= 10 ms",
         pages(f"/api/messages/{m}/targets?status=delivery_failed&limit=100", 2 * repeats)),
        ("list ?status=", "median <= 20 ms",
         each(["/api/messages?status=delivery_failed&limit=20"] * repeats)),
        ("list ?param.order_id=", "median <= 20 ms",
         each([f"/api/messages?param.order_id={o}" for o in orders])),
        ("list ?since=", "median <= 20 ms",
         each([f"/api/messages?since={since_text}&limit=20"] * repeats)),
    ]  # fmt: skip
    try:
        for _, _, read in reads:
            read()
        _check_found(reader, [f"/api/messages?param.order_id={orders[0]}"] + [
            f"/api/messages?{query}&limit=20"
            for query in ("status=delivery_failed", f"since={since_text}")
        ])  # fmt: skip
        return [Timing(name, goal, read()) for name, goal, read in reads]
    finally:
        reader.close()


def _check_found(reader: Reader, lists: Sequence[str]) -> None:
    """Each list read finds messages: a filter that finds none measures nothing."""
    for path in lists:
        found = len(reader.get(path)[1]["messages"])
        if not found:
            raise RuntimeError(f"GET {path} found no message: the data set is not as loaded")


def report(events: int, timings: Sequence[Timing]) -> str:
    reference = timings[0].median
    lines = [f"--- {events:,} events stored"]
    for t in timings:
        lines.append(
            f"{t.name:<24} median {t.median * 1000:7.2f} ms  p99 {t.p99 * 1000:7.2f} ms"
            f"  = {t.median / reference:5.1f} x healthz  {t.goal}"
        )
    return "\n".join(lines)


def message_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Message)).scalar_one())
