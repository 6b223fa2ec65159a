"""Callback intake: turn UMS status records into stored events and target statuses.

One call of :func:`record_batch` is one unit of work: bulk statements only, no
per-record round trips. The caller commits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from .schemas.records import BatchResult, record_problems
from .store import digest, store_events, store_quarantine


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after its records were checked: the usable ones (also as one JSON text,
    for PostgreSQL) and the rejects with their reasons, in the order they came."""

    received: int
    good: list[dict[str, Any]]
    good_json: str
    rejects: list[tuple[int, str, Any]]


def check_batch(records: Sequence[Any], *, channelkey: str) -> CheckedBatch:
    """Check a batch of callback records for the authenticated ``channelkey``. Pure
    computation, no database: done before a writer waits for its turn."""
    problems = record_problems(records, channelkey=channelkey)
    good = [(i, record) for i, record in enumerate(records) if i not in problems]
    rejects = [(i, reason, records[i]) for i, reason in problems.items()]
    good_json = _storable_json(good, rejects)
    rejects.sort(key=lambda reject: reject[0])  # keep them in the order they came
    return CheckedBatch(len(records), [record for _, record in good], good_json, rejects)


def record_batch(
    *,
    session: Session,
    channelkey: str,
    records: Sequence[Any],
    received_at: datetime | None = None,
) -> BatchResult:
    """Check and store a batch of callback records for the authenticated ``channelkey``
    (:func:`check_batch`, then :func:`store_batch`)."""
    batch = check_batch(records, channelkey=channelkey)
    return store_batch(session=session, channelkey=channelkey, batch=batch, received_at=received_at)


def store_batch(
    *,
    session: Session,
    channelkey: str,
    batch: CheckedBatch,
    received_at: datetime | None = None,
) -> BatchResult:
    """Store a checked batch: good records become events (a repeat of a stored record,
    in this batch or an earlier one, is a duplicate and changes nothing); each target's
    status moves only forward; the rejects are quarantined with their reasons."""
    received_at = received_at or datetime.now(UTC)
    stored = store_events(
        session,
        records=batch.good,
        records_json=batch.good_json,
        channelkey=channelkey,
        received_at=received_at,
    )
    quarantine(
        session=session,
        channelkey=channelkey,
        items=[(f"record {i}: {reason}", json.dumps(rec)) for i, reason, rec in batch.rejects],
        received_at=received_at,
    )
    return BatchResult(
        received=batch.received,
        stored=stored,
        duplicates=len(batch.good) - stored,
        quarantined=len(batch.rejects),
    )


def quarantine(
    *,
    session: Session,
    channelkey: str | None,
    items: Iterable[tuple[str, str]],
    received_at: datetime | None = None,
) -> None:
    """Keep unusable input verbatim with its reason; the same input twice is kept once."""
    received_at = received_at or datetime.now(UTC)
    store_quarantine(
        session,
        [
            {
                "quarantine_key": digest(f"{channelkey}\n{reason}\n{raw}".encode()),
                "channelkey": channelkey,
                "reason": reason,
                "raw": raw,
                "received_at": received_at,
            }
            for reason, raw in items
        ],
    )


def _storable_json(
    good: list[tuple[int, dict[str, Any]]], rejects: list[tuple[int, str, Any]]
) -> str:
    """The good records as one JSON text, after moving to ``rejects`` any record the
    database cannot hold (NUL characters, lone UTF-16 surrogates, numbers beyond
    a double such as 1e400, which Python reads as infinity)."""
    try:
        text = json.dumps([record for _, record in good], ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except ValueError:  # a non-finite number, or (UnicodeEncodeError) a lone surrogate
        pass
    else:
        if "\\u0000" not in text:
            return text  # the common case: one dump, one scan
    # Some record is suspect: look at each one's values.
    kept = []
    for index, record in good:
        problem = _unstorable(record)
        if problem:
            rejects.append((index, problem, record))
        else:
            kept.append((index, record))
    good[:] = kept
    return json.dumps([record for _, record in good], ensure_ascii=False)


def _unstorable(value: Any) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "contains a NUL character, which the database cannot store"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, not valid Unicode"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "contains a number too large to store"
    if isinstance(value, dict):
        return next(filter(None, map(_unstorable, (*value.keys(), *value.values()))), None)
    if isinstance(value, list):
        return next(filter(None, map(_unstorable, value)), None)
    return None
