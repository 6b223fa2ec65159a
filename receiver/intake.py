"""Callback intake: turn UMS status records into stored events and target statuses.

One call of :func:`record_batch` is one unit of work: bulk statements only, no
per-record round trips. The caller commits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from .status import RANK_BY_TYPE
from .store import digest, store_events, store_quarantine

MAX_SENT_TIME = 253_402_300_799_999  # 9999-12-31 in milliseconds
_SMALLINT = (-(2**15), 2**15 - 1)
_BIGINT = (-(2**63), 2**63 - 1)
_INT_FIELDS = ("sender", "wechatwk_sender", "app_sender")
_TEXT_FIELDS = ("userid", "sender_id")


class BadRecord(ValueError):
    """A callback record that cannot be stored as an event; the message is the reason."""


@dataclass(frozen=True)
class BatchResult:
    """What became of one posted batch."""

    received: int
    stored: int
    duplicates: int
    quarantined: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def record_batch(
    *,
    session: Session,
    channelkey: str,
    records: Sequence[Any],
    received_at: datetime | None = None,
) -> BatchResult:
    """Store a batch of callback records for the authenticated ``channelkey``.

    Good records become events (a repeat of a stored record, in this batch or an
    earlier one, is a duplicate and changes nothing); each target's status moves
    only forward; records that cannot be used are quarantined with the reason.
    """
    received_at = received_at or datetime.now(UTC)
    good: list[tuple[int, dict[str, Any]]] = []
    rejects: list[tuple[int, str, Any]] = []
    for index, record in enumerate(records):
        try:
            check_record(record, channelkey=channelkey)
        except BadRecord as exc:
            rejects.append((index, str(exc), record))
        else:
            good.append((index, record))
    records_json = _storable_json(good, rejects)

    stored = store_events(
        session,
        records=[record for _, record in good],
        records_json=records_json,
        channelkey=channelkey,
        received_at=received_at,
    )
    rejects.sort(key=lambda reject: reject[0])  # keep them in the order they came
    quarantine(
        session=session,
        channelkey=channelkey,
        items=[(f"record {i}: {reason}", json.dumps(rec)) for i, reason, rec in rejects],
        received_at=received_at,
    )
    return BatchResult(
        received=len(records),
        stored=stored,
        duplicates=len(good) - stored,
        quarantined=len(rejects),
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


def check_record(record: Any, *, channelkey: str) -> None:
    """Raise BadRecord unless ``record`` is a callback record that can be stored as an
    event of ``channelkey``: every field the right type, every number in range."""
    if not isinstance(record, dict):
        raise BadRecord(f"not a JSON object but {_json_kind(record)}")
    msgid = record.get("msgid")
    if not isinstance(msgid, str) or not msgid.strip():
        raise BadRecord("msgid is missing" if msgid is None else "msgid is not a non-empty string")
    type_ = record.get("type")
    if not _is_int(type_):
        raise BadRecord("type is missing" if type_ is None else "type is not an integer")
    if type_ not in RANK_BY_TYPE:
        raise BadRecord(f"type {type_} is not a UMS status type (0-8)")
    record_channel = record.get("channelkey")
    if record_channel not in (None, "", channelkey):
        raise BadRecord(
            f"channelkey {record_channel!r} is not the authenticated channel {channelkey!r}"
        )
    for name in _TEXT_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"{name} is not a string")
    for name in _INT_FIELDS:
        _check_int(record, name, _SMALLINT)
    platform = record.get("app_platform")
    if platform is not None and not (_is_int(platform) or isinstance(platform, str)):
        raise BadRecord("app_platform is neither an integer nor a string")
    _check_int(record, "sent_time", (0, MAX_SENT_TIME))
    _check_error(record.get("error"))
    params = record.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRecord("params is not an object")


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


def _check_error(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise BadRecord("error is not an object")
    code, message = value.get("code"), value.get("message")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if code is not None and not (_is_int(code) and _BIGINT[0] <= code <= _BIGINT[1]):
        raise BadRecord("error.code is not an integer")
    if message is not None and not isinstance(message, str):
        raise BadRecord("error.message is not a string")


def _check_int(record: dict[str, Any], name: str, bounds: tuple[int, int]) -> None:
    value = record.get(name)
    if value is None:
        return
    if not _is_int(value):
        raise BadRecord(f"{name} is not an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise BadRecord(f"{name} {value} is out of range")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
