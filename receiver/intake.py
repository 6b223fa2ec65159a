"""Callback intake: turn UMS status records into stored events and target statuses.

One call of :func:`record_batch` is one unit of work: bulk statements only, no
per-record round trips. The caller commits.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from .errors import database_unreachable
from .schemas.body import read_body
from .schemas.bounds import MAX_DEPTH, MAX_RECORDS
from .schemas.records import BatchResult, UnreadableRecord, record_problems
from .schemas.storable import unstorable
from .store import StoredKind, digest, store_events, store_quarantine
from .store.sqlite import PreparedRecord

log = logging.getLogger(__name__)
_FOREIGN = "msgid belongs to another channel"
# A quarantined record's reason starts with its place in its batch; its cause is the rest.
RECORD_PREFIX = "record {}: "
_RECORD_PREFIX = re.compile(r"^record [0-9]+: ")
MAX_CAUSE = 200


class BadBody(ValueError):
    """A callback body that is no batch of records; the message is why, and the body is
    kept in quarantine with it."""


def batch_of(body: bytes) -> list[Any]:
    """A callback body's records: a JSON array of at most MAX_RECORDS values, or one
    record object. Raises :class:`BadBody` for anything else."""
    try:
        payload = read_body(body)
    except ValueError as exc:
        raise BadBody(f"body is not JSON: {exc}") from None
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise BadBody("body is neither a JSON array nor an object")
    if len(payload) > MAX_RECORDS:
        # No UMS batch holds that many (UMS sends at most 100): kept once, whole.
        raise BadBody(
            f"a batch of {len(payload)} records is over the {MAX_RECORDS} a batch may hold"
        )
    return payload


def body_text(body: bytes) -> str:
    """A body as text fit to keep: undecodable bytes become \\xNN escapes, and NUL (which
    PostgreSQL text cannot hold) too, so that the text still says exactly what arrived."""
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


@dataclass(frozen=True)
class CheckedBatch:
    """A batch after its records were checked: the usable ones by index (also as one
    JSON text, for PostgreSQL) and the rejects with their reasons; or, for SQLite,
    ``prepared``: the usable records (in ``good``'s order) with their event values
    made, and no JSON text (SQLite's statements do not read it)."""

    received: int
    good: list[tuple[int, dict[str, Any]]]
    good_json: str
    rejects: list[tuple[int, str, Any]]
    prepared: list[dict[str, Any]] | None = None


def check_batch(
    records: Sequence[Any], *, channelkey: str, prepare_rows: bool = False
) -> CheckedBatch:
    """Check a batch of callback records for the authenticated ``channelkey``. Pure
    computation, no database: done before a writer waits for its turn. With
    ``prepare_rows`` (a SQLite database), the usable records' event values are made
    here too (:class:`PreparedRecord`), not while the batch holds SQLite's write lock,
    and the batch has no JSON text."""
    problems = record_problems(records, channelkey=channelkey)
    good = [(i, record) for i, record in enumerate(records) if i not in problems]
    rejects = [(i, reason, records[i]) for i, reason in problems.items()]
    if prepare_rows:
        prepared = _storable_prepared(good, rejects, channelkey)
        return CheckedBatch(len(records), good, "", rejects, prepared)
    good_json = _storable_json(good, rejects)
    return CheckedBatch(len(records), good, good_json, rejects)


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
    status moves only forward; records for another channel's message, records the
    database refuses, and the rejects are quarantined with their reasons.

    Only an unreachable database fails the batch (the caller answers 503); anything
    else that goes wrong with one record costs that record alone.
    """
    return store_batch_counted(
        session=session, channelkey=channelkey, batch=batch, received_at=received_at
    ).result


@dataclass(frozen=True)
class StoredBatch:
    """What :func:`store_batch_counted` did: the answer's counts, the new events by kind
    and the records quarantined (for metrics by channel and status)."""

    result: BatchResult
    stored: Counter[StoredKind]
    quarantined: list[Any]


def store_batch_counted(
    *,
    session: Session,
    channelkey: str,
    batch: CheckedBatch,
    received_at: datetime | None = None,
) -> StoredBatch:
    """:func:`store_batch`, telling also which kinds of events were new and which
    records went to quarantine."""
    received_at = received_at or datetime.now(UTC)
    stored, rejects = store_checked(
        session=session, channelkey=channelkey, batch=batch, received_at=received_at
    )
    quarantine(
        session=session,
        channelkey=channelkey,
        items=[
            (f"{RECORD_PREFIX.format(i)}{reason}", _kept_text(rec)) for i, reason, rec in rejects
        ],
        received_at=received_at,
    )
    new = stored.total()
    result = BatchResult(
        received=batch.received,
        stored=new,
        duplicates=batch.received - len(rejects) - new,
        quarantined=len(rejects),
    )
    return StoredBatch(result, stored, [record for _, _, record in rejects])


def store_checked(
    *, session: Session, channelkey: str, batch: CheckedBatch, received_at: datetime
) -> tuple[Counter[StoredKind], list[tuple[int, str, Any]]]:
    """Store a checked batch's good records (:func:`store_batch` without the quarantine):
    how many events were new (by kind), and every record that cannot be stored, in batch order,
    with its reason. A replay of quarantined input uses it as it is."""
    rejects = list(batch.rejects)
    try:
        stored = _store(
            session, batch.good, batch.good_json, channelkey, received_at, rejects, batch.prepared
        )
    except DBAPIError as exc:
        if database_unreachable(exc):
            raise
        # Some record the checks let through is one the database refuses: find it.
        log.warning(
            "channel %s: batch refused (%s); storing it record by record", channelkey, _refusal(exc)
        )
        session.rollback()
        rejects = list(batch.rejects)
        stored = _store_one_by_one(
            session, batch.good, channelkey, received_at, rejects, batch.prepared
        )
    rejects.sort(key=lambda reject: reject[0])  # keep them in the order they came
    return stored, rejects


def _store(
    session: Session,
    good: list[tuple[int, dict[str, Any]]],
    good_json: str,
    channelkey: str,
    received_at: datetime,
    rejects: list[tuple[int, str, Any]],
    prepared: list[dict[str, Any]] | None = None,
) -> Counter[StoredKind]:
    """Store the records (``prepared``: the same, their event values made), moving
    those of another channel's message to ``rejects``; returns how many events were
    new, by kind."""
    stored, foreign = store_events(
        session,
        records=[record for _, record in good] if prepared is None else prepared,
        records_json=good_json,
        channelkey=channelkey,
        received_at=received_at,
    )
    if foreign:
        rejects += [(i, _FOREIGN, r) for i, r in good if r["msgid"] in foreign]
    return stored


def _store_one_by_one(
    session: Session,
    good: list[tuple[int, dict[str, Any]]],
    channelkey: str,
    received_at: datetime,
    rejects: list[tuple[int, str, Any]],
    prepared: list[dict[str, Any]] | None = None,
) -> Counter[StoredKind]:
    stored: Counter[StoredKind] = Counter()
    for place, (index, record) in enumerate(good):
        one = None if prepared is None else [prepared[place]]
        try:
            with session.begin_nested():
                text = json.dumps([record], ensure_ascii=False)
                stored += _store(
                    session, [(index, record)], text, channelkey, received_at, rejects, one
                )
        except DBAPIError as exc:
            if database_unreachable(exc):
                raise
            rejects.append((index, f"the database refused it ({_refusal(exc)})", record))
    return stored


def _refusal(exc: DBAPIError) -> str:
    """What the database said, by class and SQLSTATE only: its message may quote the
    values (phone numbers, user ids), which belong in no log."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return f"{type(exc.orig).__name__}" + (f", SQLSTATE {sqlstate}" if sqlstate else "")


def _kept_text(record: Any) -> str:
    """A rejected record as JSON text; one nested too deep to encode is kept with its
    deep parts cut, which the reason already says."""
    if isinstance(record, UnreadableRecord):
        return str(record)  # the text that arrived
    # ASCII escapes: a lone surrogate or a NUL is kept as the \uXXXX escape that arrived.
    try:
        return json.dumps(record)
    except (RecursionError, ValueError):
        return json.dumps(_cut(record, MAX_DEPTH + 1), default=str)


def _cut(value: Any, depth: int) -> Any:
    """``value`` with what nests deeper than ``depth`` replaced by a marker (bounded
    recursion: ``depth`` levels at most)."""
    if not isinstance(value, dict | list):
        return value
    if depth <= 0:
        return "(nested too deeply to keep)"
    if isinstance(value, dict):
        return {str(k): _cut(v, depth - 1) for k, v in value.items()}
    return [_cut(v, depth - 1) for v in value]


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
                "cause": cause_of(reason),
                "raw": raw,
                "received_at": received_at,
            }
            for reason, raw in items
        ],
    )


def cause_of(reason: str) -> str:
    """A quarantine reason without the record's place in its batch: "record 3: msgid is
    missing" and "record 7: msgid is missing" have one cause. Cut at MAX_CAUSE
    characters (ending in "…"): a reason may quote a long value, and the cause is
    indexed (a PostgreSQL index entry holds at most about 2700 bytes)."""
    cause = _RECORD_PREFIX.sub("", reason, count=1)
    return cause if len(cause) <= MAX_CAUSE else cause[: MAX_CAUSE - 1] + "…"


def _storable_prepared(
    good: list[tuple[int, dict[str, Any]]], rejects: list[tuple[int, str, Any]], channelkey: str
) -> list[dict[str, Any]]:
    """The good records prepared (:class:`PreparedRecord`), after moving to ``rejects``
    any record the database cannot hold, as :func:`_storable_json` does: a record's own
    JSON text, made for its event key anyway, is what is looked at first."""
    kept: list[tuple[int, dict[str, Any]]] = []
    prepared: list[dict[str, Any]] = []
    for index, record in good:
        try:
            one = PreparedRecord(record, channelkey=channelkey, strict=True)
        except ValueError:  # a non-finite number, a lone surrogate, maybe a NUL
            found = unstorable(record)
            if found:
                rejects.append((index, found.describe("the record"), record))
                continue
            one = PreparedRecord(record, channelkey=channelkey)
        kept.append((index, record))
        prepared.append(one)
    good[:] = kept
    return prepared


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
        found = unstorable(record)
        if found:
            rejects.append((index, found.describe("the record"), record))
        else:
            kept.append((index, record))
    good[:] = kept
    return json.dumps([record for _, record in good], ensure_ascii=False)
