"""Callback intake: turn UMS status records into stored events and target statuses.

One call of :func:`record_batch` is one unit of work: bulk statements only, no
per-record round trips. The caller commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, and_, case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .models import Event, Quarantine, Target
from .status import RANK_BY_TYPE

EVENT: Table = Event.__table__  # type: ignore[attr-defined]
TARGET: Table = Target.__table__  # type: ignore[attr-defined]
QUARANTINE: Table = Quarantine.__table__  # type: ignore[attr-defined]

NO_SENDER = -1
# sent_time above this is in milliseconds (1e11 s is the year 5138).
_MILLISECONDS_FROM = 10**11
_MAX_SENT_TIME = 253_402_300_799_999  # 9999-12-31 in milliseconds
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

    Good records become events (a repeat of a stored record is a duplicate and
    changes nothing); each target's status moves only forward; records that
    cannot be used are quarantined with the reason.
    """
    received_at = received_at or datetime.now(UTC)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    rejects: list[tuple[str, str]] = []
    for index, record in enumerate(records):
        try:
            row = event_row(record, channelkey=channelkey, received_at=received_at)
        except BadRecord as exc:
            rejects.append((f"record {index}: {exc}", json.dumps(record)))
            continue
        # A record repeated inside one batch is stored once, like a retried one.
        rows.setdefault((row["msgid"], row["event_key"]), row)

    # Sorted rows take row locks in one global order: concurrent batches that
    # touch the same targets queue up instead of deadlocking.
    inserted = _insert_events(session, [rows[key] for key in sorted(rows)])
    new_rows = [rows[key] for key in sorted(inserted)]
    _upsert_targets(session, target_rows(new_rows, updated_at=received_at))
    quarantine(session=session, channelkey=channelkey, items=rejects, received_at=received_at)
    accepted = len(records) - len(rejects)
    return BatchResult(
        received=len(records),
        stored=len(inserted),
        duplicates=accepted - len(inserted),
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
    rows = [
        {
            "quarantine_key": _digest(f"{channelkey}\n{reason}\n{raw}".encode()),
            "channelkey": channelkey,
            "reason": reason,
            "raw": raw,
            "received_at": received_at,
        }
        for reason, raw in items
    ]
    if rows:
        stmt = _insert(session, QUARANTINE).on_conflict_do_nothing(
            index_elements=[QUARANTINE.c.quarantine_key]
        )
        session.execute(stmt, rows)


def event_row(record: Any, *, channelkey: str, received_at: datetime) -> dict[str, Any]:
    """Validate one callback record and return its ``event`` row, or raise BadRecord."""
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
    try:
        canonical = json.dumps(
            record, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRecord("contains a lone UTF-16 surrogate, not valid Unicode") from None
    if b"\\u0000" in canonical:
        raise BadRecord("contains a NUL character, which the database cannot store")

    row: dict[str, Any] = {
        "msgid": msgid,
        "event_key": _digest(canonical),
        "type": type_,
        "channelkey": channelkey,
        "raw": record,
        "received_at": received_at,
    }
    for name in _TEXT_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"{name} is not a string")
        row[name] = value or None  # UMS sends "" for "not applicable"
    for name in _INT_FIELDS:
        row[name] = _optional_int(record, name, _SMALLINT)
    platform = record.get("app_platform")
    if platform is not None and not (_is_int(platform) or isinstance(platform, str)):
        raise BadRecord("app_platform is neither an integer nor a string")
    row["app_platform"] = None if platform is None else str(platform)

    sent_time = _optional_int(record, "sent_time", (0, _MAX_SENT_TIME))
    row["sent_time"] = sent_time
    if sent_time is None:
        row["occurred_at"] = received_at
    else:
        seconds = sent_time / 1000 if sent_time >= _MILLISECONDS_FROM else sent_time
        row["occurred_at"] = datetime.fromtimestamp(seconds, UTC)

    row["error_code"], row["error_message"] = _error(record.get("error"))
    params = record.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRecord("params is not an object")
    row["params"] = params
    return row


def target_rows(events: Iterable[dict[str, Any]], *, updated_at: datetime) -> list[dict[str, Any]]:
    """Fold event rows into one row per target: its best status and how many events."""
    targets: dict[tuple[str, str, int], dict[str, Any]] = {}
    for ev in events:
        recipient = ev["userid"] or ev["sender_id"]
        if recipient is None:
            continue  # an event of the message as a whole: stored, but no target
        sender = NO_SENDER if ev["sender"] is None else ev["sender"]
        key = (ev["msgid"], recipient, sender)
        rank = RANK_BY_TYPE[ev["type"]]
        current = targets.get(key)
        if current is None:
            targets[key] = {
                "msgid": ev["msgid"],
                "recipient": recipient,
                "sender": sender,
                "userid": ev["userid"],
                "sender_id": ev["sender_id"],
                "type": ev["type"],
                "rank": rank,
                "reached_at": ev["occurred_at"],
                "event_count": 1,
                "updated_at": updated_at,
            }
            continue
        current["event_count"] += 1
        current["userid"] = current["userid"] or ev["userid"]
        current["sender_id"] = current["sender_id"] or ev["sender_id"]
        if rank > current["rank"] or (
            rank == current["rank"] and ev["occurred_at"] < current["reached_at"]
        ):
            current.update(type=ev["type"], rank=rank, reached_at=ev["occurred_at"])
    return [targets[key] for key in sorted(targets)]


def _insert_events(session: Session, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Insert events, skipping stored ones; return the keys actually inserted."""
    if not rows:
        return set()
    stmt = (
        _insert(session, EVENT)
        .on_conflict_do_nothing(index_elements=[EVENT.c.msgid, EVENT.c.event_key])
        .returning(EVENT.c.msgid, EVENT.c.event_key)
    )
    return {(msgid, key) for msgid, key in session.execute(stmt, rows)}


def _upsert_targets(session: Session, rows: list[dict[str, Any]]) -> None:
    """Merge per-target rows into the stored statuses, never moving one backwards."""
    if not rows:
        return
    stmt = _insert(session, TARGET)
    new, old = stmt.excluded, TARGET.c
    # Every SET expression sees the row as it was before this update, and the
    # row is locked (or, on SQLite, the database is) while it is evaluated.
    ahead = new.rank > old.rank
    stmt = stmt.on_conflict_do_update(
        index_elements=[old.msgid, old.recipient, old.sender],
        set_={
            "type": case((ahead, new.type), else_=old.type),
            "rank": case((ahead, new.rank), else_=old.rank),
            "reached_at": case(
                (ahead, new.reached_at),
                (and_(new.rank == old.rank, new.reached_at < old.reached_at), new.reached_at),
                else_=old.reached_at,
            ),
            "event_count": old.event_count + new.event_count,
            "userid": func.coalesce(old.userid, new.userid),
            "sender_id": func.coalesce(old.sender_id, new.sender_id),
            "updated_at": new.updated_at,
        },
    )
    session.execute(stmt, rows)


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


def _error(value: Any) -> tuple[int | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise BadRecord("error is not an object")
    code, message = value.get("code"), value.get("message")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    if code is not None and not (_is_int(code) and _BIGINT[0] <= code <= _BIGINT[1]):
        raise BadRecord("error.code is not an integer")
    if message is not None and not isinstance(message, str):
        raise BadRecord("error.message is not a string")
    return code, message


def _optional_int(record: dict[str, Any], name: str, bounds: tuple[int, int]) -> int | None:
    value = record.get(name)
    if value is None:
        return None
    if not _is_int(value):
        raise BadRecord(f"{name} is not an integer")
    if not bounds[0] <= value <= bounds[1]:
        raise BadRecord(f"{name} {value} is out of range")
    return int(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
