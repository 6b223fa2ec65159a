"""Prometheus metrics: what the service counts, and the text a scrape reads.

Under gunicorn every worker counts in files of a directory shared by the server's
processes (prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``, set up
by ``receiver.gunicorn_config`` before the workers are forked), and a scrape, whichever
worker answers it, adds up all of them. Outside gunicorn (a test's client, one
process) the counts live in this process.

Counting starts with :func:`enable`, which the web app calls: prometheus-client loads
then and not before, so a command-line tool that nobody scrapes neither pays for the
import nor writes into a server's metrics directory. Until then every ``count_*``
function does nothing.

Every label takes a bounded set of values (routes, never raw paths; channel names and
status names from the protocol; configured channelkeys), so that the number of series
stays small whatever arrives.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sender.ums.protocol import STATUS_BY_TYPE, channel_name

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
# Methods a route may answer; any other becomes "other" (the method is the client's word).
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# sent_time at or above this is in milliseconds (as the intake reads it).
_MILLISECONDS_FROM: Final = 10**11
# Callback lag: UMS retries for a few minutes; hours mean a backlog or a wrong clock.
_LAG_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600, 21600, 86400)
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_enabled = False


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    latency: Any
    records: Any
    lag: Any
    database_errors: Any
    outbox: Any


@functools.cache
def _metrics() -> _Metrics:
    from prometheus_client import Counter as Count
    from prometheus_client import Histogram

    return _Metrics(
        requests=Count(
            "umstrack_http_requests",
            "HTTP answers by route, method and status code.",
            ["route", "method", "status"],
        ),
        latency=Histogram(
            "umstrack_http_request_duration_seconds",
            "Time from a request's start to its answer's start, by route and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
        ),
        records=Count(
            "umstrack_callback_records",
            "Callback records by channelkey, UMS channel, status and what became of them: "
            "received, then stored, duplicate (stored before) or quarantined; spooled: kept "
            "in the outage spool while the database was unavailable (then counted again as "
            "stored, duplicate or quarantined when drained).",
            ["channelkey", "channel", "status", "outcome"],
        ),
        lag=Histogram(
            "umstrack_callback_lag_seconds",
            "Arrival time minus the record's sent_time, for usable records that have one.",
            ["channel"],
            buckets=_LAG_BUCKETS,
        ),
        database_errors=Count(
            "umstrack_database_errors",
            "Database errors: unavailable (answered 503, or a send left pending) or "
            "other (a failed request).",
            ["where", "error"],
        ),
        outbox=Count(
            "umstrack_outbox_sends",
            "Provider requests of sends by outcome: sent, refused, not_sent, unknown.",
            ["provider", "outcome"],
        ),
    )


def enable() -> None:
    """Start counting in this process (the web app calls it)."""
    global _enabled
    _metrics()
    _enabled = True


def enabled() -> bool:
    """Whether this process counts."""
    return _enabled


def count_request(*, route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request."""
    if not _enabled:
        return
    method = method if method in _METHODS else "other"
    metrics = _metrics()
    metrics.requests.labels(route, method, str(status)).inc()
    metrics.latency.labels(route, method).observe(max(seconds, 0.0))


def count_received(
    *, channelkey: str, records: Iterable[Any], usable: Iterable[dict[str, Any]], at: datetime
) -> Counter[tuple[str, str]]:
    """Count a batch's records as they arrived (``records``: all of them, dicts or not)
    by channel and status, and the lag of the ``usable`` ones that carry a sent_time:
    per channel, the largest in the batch (its oldest record). Returns the records by
    (channel, status), for :func:`count_outcome` (nothing while not counting)."""
    if not _enabled:
        return Counter()
    metrics = _metrics()
    received = tally(records)
    for (channel, status), n in received.items():
        metrics.records.labels(channelkey, channel, status, "received").inc(n)
    # One observation per batch and channel (its oldest record), not per record: an
    # observation costs microseconds, a hundred of them more than the rest together.
    # Usable records were checked: sender and sent_time are integers or absent.
    oldest: dict[tuple[Any, bool], int] = {}
    for r in usable:
        sent_time = r.get("sent_time")
        if sent_time is not None:
            if sent_time >= _MILLISECONDS_FROM:
                sent_time //= 1000
            key = (r.get("sender"), r.get("wechatwk_sender") is not None)
            if sent_time < oldest.get(key, sent_time + 1):
                oldest[key] = sent_time
    lags: dict[str, float] = {}
    arrived = at.timestamp()
    for (sender, wechatwk), sent in oldest.items():
        channel = _labels(sender, type(sender) is int, 0, True, wechatwk)[0]
        lags[channel] = max(lags.get(channel, 0.0), arrived - sent)
    for channel, lag in lags.items():
        metrics.lag.labels(channel).observe(max(lag, 0.0))
    return received


def tally(records: Iterable[Any]) -> Counter[tuple[str, str]]:
    """A batch's records by (channel, status) label (nothing while not counting)."""
    received: Counter[tuple[str, str]] = Counter()
    if not _enabled:
        return received
    # The records of a batch share a few channels and statuses: each kind is labelled
    # once. This runs on every batch, so the per-record part is kept to a few lookups.
    try:
        kinds = Counter(
            (r.get("sender"), type(r.get("sender")) is int, r.get("type"),
             type(r.get("type")) is int, r.get("wechatwk_sender") is not None)
            if type(r) is dict
            else _NOT_A_RECORD
            for r in records
        )  # fmt: skip
    except TypeError:  # a rejected record's sender or type is a list or an object
        kinds = Counter(_kind(r) for r in records)
    for kind, n in kinds.items():
        received[_labels(*kind)] += n
    return received


def count_spooled(*, channelkey: str, received: Counter[tuple[str, str]]) -> None:
    """Count a batch's records kept in the outage spool (their outcome is counted when a
    drain stores them)."""
    if _enabled:
        for (channel, status), n in received.items():
            _metrics().records.labels(channelkey, channel, status, "spooled").inc(n)


def count_outcome(
    *,
    channelkey: str,
    received: Counter[tuple[str, str]],
    stored: Counter[tuple[int | None, bool, int]],
    quarantined: Sequence[Any],
) -> None:
    """Count what became of a batch's records once it was committed, by channel and
    status: ``received`` as :func:`count_received` gave it, the new events by kind
    (sender, whether a wechatwk_sender was named, type) and the quarantined records;
    the rest were duplicates."""
    if not _enabled:
        return
    records = _metrics().records
    new: Counter[tuple[str, str]] = Counter()
    for (sender, wechatwk, type_), n in stored.items():
        new[_labels(sender, sender is not None, type_, True, wechatwk)] += n
    kept = Counter(record_labels(record) for record in quarantined)
    for labels, n in new.items():
        records.labels(channelkey, *labels, "stored").inc(n)
    for labels, n in kept.items():
        records.labels(channelkey, *labels, "quarantined").inc(n)
    for labels, n in (received - new - kept).items():
        records.labels(channelkey, *labels, "duplicate").inc(n)


def count_database_error(*, where: str, unavailable: bool) -> None:
    """Count a database error met while answering a request or recording a send."""
    if _enabled:
        _metrics().database_errors.labels(where, "unavailable" if unavailable else "other").inc()


def count_sends(*, provider: str, outcome: str, n: int = 1) -> None:
    """Count provider requests of a send by outcome (sent, refused, not_sent, unknown)."""
    if _enabled and n:
        _metrics().outbox.labels(provider, outcome).inc(n)


def record_labels(record: Any) -> tuple[str, str]:
    """A callback record's channel and status names as labels: ``none`` for a record
    naming no channel, ``unknown`` for a channel number UMS has not documented, and
    ``unreadable`` for a status (or record) that cannot be read."""
    return _labels(*_kind(record))


def _kind(record: Any) -> tuple[Any, bool, Any, bool, bool]:
    """What a record's labels depend on: its sender and type, each with whether it is
    an integer (True and 1 are equal keys, not the same record), and its WeCom mark. A
    value neither None nor an integer stands as "?" (it may be a list, which is no key)."""
    if type(record) is not dict:
        return _NOT_A_RECORD
    sender, type_ = record.get("sender"), record.get("type")
    sender_int, type_int = type(sender) is int, type(type_) is int
    return (
        sender if sender_int or sender is None else "?",
        sender_int,
        type_ if type_int else None,
        type_int,
        record.get("wechatwk_sender") is not None,
    )


# Labels of a value that is not a record at all: no channel, no status.
_NOT_A_RECORD: Final = (None, False, None, False, False)


@functools.lru_cache(maxsize=1024)
def _labels(
    sender: Any, sender_int: bool, type_: Any, type_int: bool, wechatwk: bool
) -> tuple[str, str]:
    """The labels of a record of this sender and type (see :func:`_kind`)."""
    if sender is None:
        channel = "none"
    elif not sender_int:
        channel = "unknown"
    else:
        name = channel_name(sender, wechatwk_sender=0 if wechatwk else None)
        channel = "unknown" if name is None or name.startswith("unknown:") else name
    status = STATUS_BY_TYPE.get(type_, "unreadable") if type_int else "unreadable"
    return channel, status


# --- scraping ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScrapeGauge:
    """A gauge worked out when a scrape asks for it, by ``read`` (called in the scrape's
    request, so that it may query the database); ``read`` gives one value, or values by
    the label values of ``labels``. A reading is reused for ``max_age`` seconds (a
    costly query need not run at every scrape of every scraper)."""

    name: str
    documentation: str
    read: Callable[[], float | dict[tuple[str, ...], float]]
    labels: Sequence[str] = ()
    max_age: float = 0.0
    # The last reading, as (monotonic time, value): one per process.
    _last: list[tuple[float, float | dict[tuple[str, ...], float]]] = field(
        default_factory=list, compare=False, repr=False
    )

    def reading(self) -> float | dict[tuple[str, ...], float]:
        """``read``'s value, or the last one while it is younger than ``max_age``."""
        now = time.monotonic()
        if self._last and now - self._last[0][0] < self.max_age:
            return self._last[0][1]
        value = self.read()
        self._last[:] = [(now, value)]
        return value

    def collect(self) -> Iterator[Metric]:
        """The gauge's samples (the registry's collector interface)."""
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        try:
            value = self.reading()
        except Exception as exc:  # noqa: BLE001 (whatever it is, the scrape goes on)
            # Left out, not failing the scrape: with the database down, the counters of
            # that outage are what matters.
            log.warning("metric %s left out of this scrape: %s", self.name, type(exc).__name__)
            return
        if isinstance(value, dict):
            for label_values, number in sorted(value.items()):
                family.add_metric(list(label_values), number)
        else:
            family.add_metric([], value)
        yield family


def multiprocess() -> bool:
    """Whether this process counts in a directory shared with its sibling workers."""
    return bool(os.environ.get(MULTIPROC_DIR))


def scrape(gauges: Iterable[ScrapeGauge] = ()) -> tuple[bytes, str]:
    """The metrics of every worker of this server, and ``gauges``, as Prometheus text;
    with its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.registry import CollectorRegistry

    _metrics()  # the families appear, at zero, before anything was counted
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Registered(REGISTRY))
    for gauge in gauges:
        registry.register(gauge)
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class _Registered:
    """This process's own registry, inside the registry of one scrape."""

    registry: Any

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()
