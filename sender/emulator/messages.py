"""The messages the emulator accepted, the records made for them and what became of each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from ..ums.protocol import STATUS_BY_TYPE, SendKind
from .outcomes import Target

Settled = Literal["delivered", "dropped"]


@dataclass(eq=False)
class Entry:
    """One record made for a message, and what became of it."""

    message: Message = field(repr=False)
    record: dict[str, Any]
    live: int = 0  # batches holding it that are not finished
    state: Literal["pending", "delivered", "dropped"] = "pending"


@dataclass(eq=False)
class Message:
    """An accepted send: its targets, its records and how many of each type went out."""

    msgid: str
    number: int  # the n-th send since the start: picks the send's random streams
    channelkey: str
    kind: SendKind
    sendno: str | None
    callback_url: str | None
    params: dict[str, Any] | None
    created: float  # wall clock
    recipients: int = 0
    targets: list[Target] = field(default_factory=list)
    records: list[Entry] = field(default_factory=list)
    withdrawn: bool = False
    generated: Counter[int] = field(default_factory=Counter)
    delivered: Counter[int] = field(default_factory=Counter)
    dropped: Counter[int] = field(default_factory=Counter)
    pending: int = 0

    def add(self, record: dict[str, Any]) -> Entry:
        """Keep a record made for this message; it is pending until settled."""
        entry = Entry(self, record)
        self.records.append(entry)
        self.generated[record["type"]] += 1
        self.pending += 1
        return entry

    def settle(self, entry: Entry, state: Settled) -> None:
        """Count a pending record as delivered or dropped, for good."""
        entry.state = state
        self.pending -= 1
        counts = self.delivered if state == "delivered" else self.dropped
        counts[entry.record["type"]] += 1

    def as_json(self) -> dict[str, Any]:
        """The message's figures, as ``/_emulator/state`` shows them."""
        return {
            "channelkey": self.channelkey,
            "kind": self.kind.value,
            "sendno": self.sendno,
            "callback_url": self.callback_url,
            "recipients": self.recipients,
            "targets": len(self.targets),
            "withdrawn": self.withdrawn,
            "generated": _counts(self.generated),
            "delivered": _counts(self.delivered),
            "dropped": _counts(self.dropped),
            "pending": self.pending,
        }


def _counts(counter: Counter[int]) -> dict[str, int]:
    return {STATUS_BY_TYPE[t]: counter[t] for t in sorted(STATUS_BY_TYPE)}
