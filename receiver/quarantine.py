"""The quarantine: a filtered, paged list of the input the intake could not use, and its
replay through the intake after a fix or a configuration change.

A replay runs each kept input through the same checks and the same bulk statements as
a callback of the channel that posted it (:func:`receiver.intake.store_checked`), then
marks the row with when and what came of it. It never keeps a second quarantine row:
input that is still unusable stays in its own row, with the new reason in
``replay_result``. A record already stored is a duplicate (the event key), so however
often a row is replayed, its events are stored once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, select, true, update
from sqlalchemy.orm import Session

from sender.ums.protocol import channel_name
from sender.values import is_int

from .db import write_transaction
from .intake import RECORD_PREFIX, cause_of, check_batch, store_checked
from .keyset import CursorError, cursor_datetime, decode, encode, past
from .schemas.bounds import MAX_RECORDS
from .schemas.quarantine import QuarantinedInput, QuarantinePage, ReasonCount
from .schemas.queries import DEFAULT_LIMIT
from .store import QUARANTINE

STORED = "stored"
DUPLICATE = "duplicate"
STILL_QUARANTINED = "quarantined: "  # + the reason
_REPLAYED_OK = (STORED, DUPLICATE)


def _filters(
    *, reason: str | None, channel: str | None, since: datetime | None
) -> ColumnElement[bool]:
    conditions = []
    if reason is not None:
        conditions.append(QUARANTINE.c.cause == reason)
    if channel is not None:
        conditions.append(QUARANTINE.c.channelkey == channel)
    if since is not None:
        conditions.append(QUARANTINE.c.received_at >= since)
    return and_(true(), *conditions)


def list_quarantine(
    *,
    session: Session,
    reason: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> QuarantinePage:
    """Kept inputs, newest first, filtered by cause (``reason``), channelkey and arrival
    time (``since`` inclusive), with the counts per cause of all that match. Raises
    :class:`receiver.read.CursorError` for a cursor this list did not give."""
    where = _filters(reason=reason, channel=channel, since=since)
    key = (QUARANTINE.c.received_at, QUARANTINE.c.id)
    query = select(QUARANTINE).where(where)
    if cursor:
        received, id_ = decode(cursor, "q", 2)
        query = query.where(past(key, (cursor_datetime(received), _id(id_)), descending=True))
    rows = session.execute(query.order_by(*(k.desc() for k in key)).limit(limit + 1)).mappings()
    found = list(rows)
    count = func.count()
    counts = session.execute(
        select(QUARANTINE.c.cause, count)
        .where(where)
        .group_by(QUARANTINE.c.cause)
        .order_by(count.desc(), QUARANTINE.c.cause)
    )
    last = found[limit - 1] if len(found) > limit else None
    return QuarantinePage(
        items=[_item(row) for row in found[:limit]],
        counts=[ReasonCount(reason=cause, count=n) for cause, n in counts],
        next_cursor=None
        if last is None
        else encode("q", [last["received_at"].isoformat(), last["id"]]),
    )


def _id(value: Any) -> int:
    if not is_int(value) or not 1 <= value < 2**63:
        raise CursorError("a damaged cursor")
    return int(value)


def _item(row: Mapping[Any, Any]) -> QuarantinedInput:
    return QuarantinedInput(
        id=row["id"],
        received_at=row["received_at"],
        channelkey=row["channelkey"],
        channel=_channel(row["raw"]),
        reason=row["reason"],
        cause=row["cause"],
        raw=row["raw"],
        replayed_at=row["replayed_at"],
        replay_result=row["replay_result"],
    )


def _channel(raw: str) -> str | None:
    """The channel name of a kept record's sender, when it names one."""
    if not raw.startswith("{"):
        return None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    sender = record.get("sender") if isinstance(record, dict) else None
    if not is_int(sender) or isinstance(sender, bool):
        return None
    wechatwk = record.get("wechatwk_sender")
    return channel_name(sender, wechatwk_sender=wechatwk if is_int(wechatwk) else None)


@dataclass
class ReplaySummary:
    """What a replay did: rows run through the intake (``replayed``), the events they
    stored and the records already stored, rows still unusable, rows left alone because
    an earlier replay stored them (``skipped``)."""

    replayed: int = 0
    stored: int = 0
    duplicates: int = 0
    still_quarantined: int = 0
    skipped: int = 0
    dry_run: bool = False


def replay(
    *,
    engine: Engine,
    ids: Sequence[int] = (),
    reason: str | None = None,
    channel: str | None = None,
    since: datetime | None = None,
    again: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ReplaySummary:
    """Run the chosen quarantine rows (by ``ids``, else every row the filters select)
    through the intake again, oldest first, one transaction per row; a row an earlier
    replay stored is skipped unless ``again``. ``dry_run`` does it all and rolls back."""
    summary = ReplaySummary(dry_run=dry_run)
    query = select(QUARANTINE.c.id, QUARANTINE.c.replay_result).order_by(QUARANTINE.c.id)
    if ids:
        query = query.where(QUARANTINE.c.id.in_(sorted(set(ids))))
    else:
        query = query.where(_filters(reason=reason, channel=channel, since=since))
    with engine.connect() as conn:
        chosen = conn.execute(query).all()
    for id_, result in chosen:
        if result in _REPLAYED_OK and not again:
            summary.skipped += 1
            continue
        with write_transaction(engine) as session:
            _replay_row(session, id_, summary, now or datetime.now(UTC))
            if dry_run:
                session.rollback()
    return summary


def _replay_row(session: Session, id_: int, summary: ReplaySummary, now: datetime) -> None:
    row = session.execute(select(QUARANTINE).where(QUARANTINE.c.id == id_)).mappings().one()
    records = _records(row["reason"], row["raw"])
    summary.replayed += 1
    if records is None or row["channelkey"] is None:
        result = STILL_QUARANTINED + row["reason"]
    else:
        batch = check_batch(records, channelkey=row["channelkey"])
        kinds, rejects = store_checked(
            session=session, channelkey=row["channelkey"], batch=batch, received_at=now
        )
        stored = kinds.total()
        summary.stored += stored
        summary.duplicates += len(records) - len(rejects) - stored
        if rejects:
            index, why, _ = rejects[0]
            result = STILL_QUARANTINED + _place(row["reason"], len(records), index) + why
        else:
            result = STORED if stored else DUPLICATE
    if result.startswith(STILL_QUARANTINED):
        summary.still_quarantined += 1
    session.execute(
        update(QUARANTINE)
        .where(QUARANTINE.c.id == id_)
        .values(replayed_at=now, replay_result=result)
    )


def _records(reason: str, raw: str) -> list[Any] | None:
    """The records a kept input holds, as the intake would read them; None when it is
    no batch the intake takes (not JSON, neither an array nor an object, too long)."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return None
    if _is_record(reason):
        return [value]  # one record, whatever it is: the checks say what is wrong
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and len(value) <= MAX_RECORDS:
        return value
    return None


def _is_record(reason: str) -> bool:
    return cause_of(reason) != reason


def _place(reason: str, size: int, index: int) -> str:
    """A reject's place in the kept input: the record's own for a record row, its
    index for a body of several."""
    if _is_record(reason):
        return reason[: len(reason) - len(cause_of(reason))]
    return RECORD_PREFIX.format(index) if size > 1 else ""


def _refuse_constant(name: str) -> Any:
    # As the intake reads a body: NaN and Infinity are no JSON.
    raise ValueError(f"{name} is not valid JSON")
