"""Records on their way to callback URLs: held back, gathering, or batched and due.

UMS POSTs one batch per 100 records, or what gathered in 10 s if fewer (消息回调设置,
Message callback settings); a batch goes to one callback URL with one channel's
credentials, so records gather per (URL, channel). The faults a receiver is tested
against are played here: records held back, every batch sent twice, records and
batches in random order.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from .config import EmulatorConfig
from .messages import Entry, Message

log = logging.getLogger(__name__)

# attempted = acknowledged + failed; failed_unverified (attempts that stopped at a failed
# URL check) is part of failed, dropped_unverified (drops after such an attempt) of dropped.
_BATCH_FIGURES: Final = (
    "attempted",
    "acknowledged",
    "failed",
    "failed_unverified",
    "dropped",
    "dropped_unverified",
)


@dataclass(eq=False)
class Endpoint:
    """One (callback URL, channel): its verification, gathering batch and figures."""

    url: str
    channelkey: str
    verified: bool | None = None  # None: never checked; False: checked again before each attempt
    verify_attempts: int = 0
    verify_error: str | None = None
    gathering: list[Entry] = field(default_factory=list)
    deadline: float | None = None
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    failed_unverified: int = 0
    dropped: int = 0
    dropped_unverified: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    receiver: Counter[str] = field(default_factory=Counter)
    last_answer: dict[str, Any] | None = None
    last_drop: dict[str, Any] | None = None  # the batch last given up, and why

    def as_json(self) -> dict[str, Any]:
        """The endpoint's figures, as ``/_emulator/state`` shows them."""
        return {
            "url": self.url,
            "channelkey": self.channelkey,
            "verification": {
                "state": {None: "unverified", True: "verified", False: "failed"}[self.verified],
                "attempts": self.verify_attempts,
                "error": self.verify_error,
            },
            "batches": {name: getattr(self, name) for name in _BATCH_FIGURES},
            "answers": dict(self.answers),
            "receiver": dict(self.receiver),
            "last_answer": self.last_answer,
            "last_drop": self.last_drop,
            "gathering": len(self.gathering),
        }


@dataclass(eq=False)
class Batch:
    """Records going to one endpoint in one POST."""

    endpoint: Endpoint
    entries: list[Entry]
    seq: int
    attempts: int = 0
    due: float = 0.0


class Outbox:
    """The records between being made and being POSTed. Not locked itself: the
    emulator calls it with its lock held."""

    def __init__(self, config: EmulatorConfig, seed: int) -> None:
        self.config = config
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.records_without_url = 0
        self._delayed: list[tuple[float, Entry, Endpoint]] = []
        self._scheduled: list[Batch] = []
        self._batch_seq = 0
        self._batch_rng = random.Random(f"{seed}:batches")

    def put(
        self, msg: Message, records: list[dict[str, Any]], *, faults: random.Random, now: float
    ) -> None:
        """Take a send's or withdraw's records in; ``faults`` draws which are held back."""
        cfg = self.config
        if cfg.shuffle:
            faults.shuffle(records)  # e.g. delivered before submitted
        endpoint = None
        if msg.callback_url:
            key = (msg.callback_url, msg.channelkey)
            endpoint = self.endpoints.get(key)
            if endpoint is None:
                endpoint = self.endpoints[key] = Endpoint(msg.callback_url, msg.channelkey)
        for record in records:
            entry = msg.add(record)
            if endpoint is None:
                msg.settle(entry, "dropped")
                self.records_without_url += 1
            elif cfg.delay_share and faults.random() < cfg.delay_share:
                self._delayed.append((now + cfg.delay_seconds, entry, endpoint))
            else:
                self._gather(entry, endpoint, now)
        if endpoint is None and records:
            log.warning(
                "%s: no callback URL (no callback.url, no default): %d record(s) not delivered",
                msg.msgid,
                len(records),
            )

    def seal(self, now: float) -> None:
        """Turn due held-back records and full or timed-out gatherings into batches."""
        still = []
        for due, entry, endpoint in self._delayed:
            if due <= now:
                self._gather(entry, endpoint, now)
            else:
                still.append((due, entry, endpoint))
        self._delayed = still
        size = self.config.batch_size
        for endpoint in self.endpoints.values():
            while len(endpoint.gathering) >= size:
                self._schedule(endpoint, endpoint.gathering[:size], now)
                del endpoint.gathering[:size]
            if endpoint.gathering and endpoint.deadline is not None and endpoint.deadline <= now:
                self._schedule(endpoint, endpoint.gathering, now)
                endpoint.gathering = []
            if not endpoint.gathering:
                endpoint.deadline = None

    def take_due(self, now: float) -> Batch | None:
        """The next batch due (any due one under the shuffle fault), or None."""
        due = [batch for batch in self._scheduled if batch.due <= now]
        if not due:
            return None
        if self.config.shuffle:
            batch = self._batch_rng.choice(due)
        else:
            batch = min(due, key=lambda b: (b.due, b.seq))
        self._scheduled.remove(batch)
        return batch

    def retry(self, batch: Batch, due: float) -> None:
        """Put a failed batch back, due again at ``due``."""
        batch.due = due
        self._scheduled.append(batch)

    def next_wake(self) -> float | None:
        """When the next held-back record, gathering or batch falls due."""
        times = [due for due, _, _ in self._delayed]
        times += [e.deadline for e in self.endpoints.values() if e.deadline is not None]
        times += [batch.due for batch in self._scheduled]
        return min(times, default=None)

    def empty(self) -> bool:
        """Whether no record is held back, gathering or in a batch waiting."""
        return (
            not self._delayed
            and not self._scheduled
            and not any(e.gathering for e in self.endpoints.values())
        )

    def waiting(self) -> dict[str, int]:
        """Records held back, records gathering, batches waiting."""
        return {
            "delayed_records": len(self._delayed),
            "gathering_records": sum(len(e.gathering) for e in self.endpoints.values()),
            "batches": len(self._scheduled),
        }

    def batch_totals(self) -> dict[str, int]:
        """Batch figures summed over every endpoint."""
        return {
            name: sum(getattr(e, name) for e in self.endpoints.values()) for name in _BATCH_FIGURES
        }

    def _gather(self, entry: Entry, endpoint: Endpoint, now: float) -> None:
        if not endpoint.gathering:
            endpoint.deadline = now + self.config.flush_interval
        endpoint.gathering.append(entry)

    def _schedule(self, endpoint: Endpoint, entries: list[Entry], now: float) -> None:
        copies = 2 if self.config.duplicate_batches else 1
        for _ in range(copies):
            self._batch_seq += 1
            for entry in entries:
                entry.live += 1
            self._scheduled.append(Batch(endpoint, list(entries), self._batch_seq, due=now))
