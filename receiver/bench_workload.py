"""The workloads of ``umstrack bench``: the records of each batch, and what a run's
batches must leave in the database.

- ``broadcast``: one big broadcast's callbacks, every batch the same msgid, each
  recipient's records (target valid, submitted, delivered, clicked) in order in one batch.
- ``messages``: a new msgid every batch, 25 recipients each, in order.
- ``mixed``: what the stage rule is there for. Batches come in groups of
  :data:`MIXED_GROUP`, each group about one message of ``batch_size`` recipients; every
  batch of a group holds one record of each of them, so a recipient's records are spread
  over the group's batches, which posters send at once. A recipient's story has
  failures (invalid target, submission and delivery failures, failed withdrawals),
  failures followed by a success in the same stage, two failures or two clicks at
  different times (the earlier is kept), withdrawals, and records posted again
  (duplicates); its records are shuffled and their times are not in lifecycle order.

Every workload is a pure function of its msgid, channel key, batch size and ``now``:
the same :class:`Workload` posted twice gives the same records.
"""

from __future__ import annotations

import functools
import json
import os
import random
import threading
import time
from collections import Counter
from typing import Any

from sqlalchemy import Engine, Table, or_, text

from sender.ums.protocol import SYSTEM_SENDER

from .status import RANK_BY_TYPE

WORKLOADS = ("broadcast", "messages", "mixed")

# Lifecycle of one recipient of a broadcast to the APP channel.
_LIFECYCLE = ((0, 0), (2, 1), (4, 1), (6, 1))

# Batches of one message in the mixed workload: each recipient has this many records.
MIXED_GROUP = 6
_APP, _SMS = 1, 5
# Each stage's records for one recipient (their types; each gets a time of its own, at
# random), with their weights: one is drawn per stage. Validation is UMS's (sender 0).
_STAGE_CHOICES: tuple[tuple[tuple[tuple[int, ...], int], ...], ...] = (
    (((0,), 80), ((1,), 10), ((1, 0), 10)),  # valid; invalid; invalid and valid
    (((2,), 80), ((3, 3), 10), ((3, 2), 10)),  # submitted; failed twice; failed and taken
    (((4,), 60), ((5,), 15), ((5, 4), 15), ((), 10)),  # delivered; failed; both; no report
    (((), 45), ((6,), 40), ((6, 6), 15)),  # clicked never, once, twice
    (((), 75), ((7,), 10), ((8,), 10), ((8, 7), 5)),  # withdrawn; failed; failed and done
)
_ERRORS = {
    1: ((1001, "invalid recipient"), (1002, "recipient unsubscribed")),
    3: ((2001, "channel refused the message"), (2002, "channel rate limit")),
    5: ((3005, "device not reachable"), (3006, "message expired")),
    8: ((4001, "message already read"), (4002, "withdraw window passed")),
}


class Workload:
    """The bodies of a run's batches, made as they are asked for (a few microseconds a
    record: the posters share the machine with the server they measure)."""

    def __init__(
        self,
        kind: str,
        channelkey: str,
        batch_size: int,
        stamp: str,
        *,
        msgid: str | None = None,
        now: int | None = None,
    ) -> None:
        """A workload of new messages (``msgid`` and the time ``now`` named, or made from
        ``stamp``, this process and the clock)."""
        if kind not in WORKLOADS:
            raise ValueError(f"unknown workload {kind!r}: one of {', '.join(WORKLOADS)}")
        self.kind, self.channelkey, self.batch_size = kind, channelkey, batch_size
        self.msgid = msgid or f"v:1t:{stamp}p:{os.getpid()}n:{kind}{time.monotonic_ns() % 10**9}"
        self.now = int(time.time()) if now is None else now
        self.made = 0  # bodies made so far: batches 0 to made - 1
        self._lock = threading.Lock()  # posters make bodies at once

    def records(self, index: int) -> list[dict[str, Any]]:
        """Batch ``index``'s records."""
        if self.kind == "broadcast":
            return _records(self.msgid, self.channelkey, index * self.batch_size,
                            self.batch_size, self.now)  # fmt: skip
        if self.kind == "mixed":
            group, place = divmod(index, MIXED_GROUP)
            stories = _mixed_group(
                f"{self.msgid}-{group}", self.channelkey, self.batch_size, self.now
            )
            return [story[place] for story in stories]
        return _records(f"{self.msgid}-{index}", self.channelkey, 0, self.batch_size, self.now)

    def body(self, index: int) -> bytes:
        with self._lock:
            self.made = max(self.made, index + 1)
        return json.dumps(self.records(index)).encode()

    def expected(self) -> tuple[int, Counter[int]]:
        """What the batches made so far must leave when each record was stored once (a
        record posted again is a duplicate): how many events, and the target rows (a
        recipient on one channel, or on none: its validation) by current type, the best
        by the stage rule."""
        best: dict[tuple[str, str, int], int] = {}
        events = 0
        seen: set[str] = set()  # mixed: the records of the current group so far
        for index in range(self.made):
            if self.kind == "mixed" and index % MIXED_GROUP == 0:
                seen = set()
            for r in self.records(index):
                if self.kind == "mixed":  # only there does a record come again
                    canonical = json.dumps(r, sort_keys=True)
                    if canonical in seen:
                        continue
                    seen.add(canonical)
                events += 1
                key = (r["msgid"], r["userid"], r["sender"])
                if key not in best or RANK_BY_TYPE[r["type"]] > RANK_BY_TYPE[best[key]]:
                    best[key] = r["type"]
        return events, Counter(best.values())

    def mine(self, table: Table) -> Any:
        """The rows of ``table`` (message, event, target) of this workload's messages."""
        return or_(table.c.msgid == self.msgid, table.c.msgid.like(f"{self.msgid}-%"))

    def stored(self, engine: Engine) -> tuple[int, Counter[int]]:
        """What the database holds of this run's messages: events, and targets by type."""
        mine = "(msgid = :msgid OR msgid LIKE :prefix)"
        given = {"msgid": self.msgid, "prefix": f"{self.msgid}-%"}
        with engine.connect() as conn:
            events = conn.execute(text(f"SELECT count(*) FROM event WHERE {mine}"), given)
            targets = conn.execute(
                text(f"SELECT type, count(*) FROM target WHERE {mine} GROUP BY type"), given
            )
            return events.scalar_one(), Counter({t: n for t, n in targets.all()})


def _records(msgid: str, channelkey: str, start: int, size: int, now: int) -> list[dict[str, Any]]:
    """Records ``start`` to ``start + size`` of a message's callbacks: each recipient's
    lifecycle (target valid, submitted, delivered, clicked) on the app channel."""
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
    return records


@functools.lru_cache(maxsize=64)
def _mixed_group(
    msgid: str, channelkey: str, recipients: int, now: int
) -> tuple[tuple[dict[str, Any], ...], ...]:
    """Each recipient's :data:`MIXED_GROUP` records of message ``msgid``, in the order of
    the group's batches (kept for a while: the group's batches are made one by one)."""
    return tuple(_mixed_story(msgid, channelkey, n, now) for n in range(recipients))


def _mixed_story(msgid: str, channelkey: str, n: int, now: int) -> tuple[dict[str, Any], ...]:
    """Recipient ``n``'s records: validation by UMS itself (sender 0), then its channel's
    (app or SMS) stages, with failures and repeats, each at a time of its own (so that no
    two records of one stage tie), shuffled, padded with records posted again."""
    rng = random.Random(f"{msgid}/{n}")  # a workload's, not a secret's
    channel = rng.choice((_APP, _SMS))
    story = [
        (type_, SYSTEM_SENDER if stage == 0 else channel)
        for stage, choices in enumerate(_STAGE_CHOICES)
        for type_ in rng.choices([types for types, _ in choices], [w for _, w in choices])[0]
    ]
    offsets = rng.sample(range(600), len(story))
    records = [
        _mixed_record(msgid, channelkey, n, type_, sender, now + offset, rng)
        for (type_, sender), offset in zip(story, offsets, strict=True)
    ]
    rng.shuffle(records)
    records = records[:MIXED_GROUP]
    while len(records) < MIXED_GROUP:  # the same record again: a duplicate
        records.insert(rng.randrange(len(records) + 1), rng.choice(records))
    return tuple(records)


def _mixed_record(
    msgid: str, channelkey: str, n: int, type_: int, sender: int, sent_time: int, rng: random.Random
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": type_,
        "channelkey": channelkey,
        "msgid": msgid,
        "userid": f"user{n}",
        "sender": sender,
        "sent_time": sent_time,
        "params": {"campaign": "bench"},
    }
    if type_ in _ERRORS:
        code, message = rng.choice(_ERRORS[type_])
        record["error"] = {"code": code, "message": message}
    if sender == _APP:
        record.update(sender_id=f"1104a8979{n:010d}", app_platform=0, app_sender=1)
    elif sender == _SMS:
        record["sender_id"] = f"138{n:08d}"
    return record
