"""SQLite (and any backend with INSERT ... ON CONFLICT ... RETURNING): the rows are
built in Python, inserted with RETURNING, folded per target in Python and upserted."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..status import RANK_BY_TYPE
from .statements import (
    MESSAGE,
    MILLISECONDS_FROM,
    NO_SENDER,
    STAGE_BY_TYPE,
    STAGES,
    StoredKind,
    digest,
    statements,
)


def store_events_portable(
    session: Session, records: Sequence[dict[str, Any]], *, channelkey: str, now: datetime
) -> Counter[StoredKind]:
    days = _message_days(session, {record["msgid"] for record in records})
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        row = _event_row(record, channelkey=channelkey, received_at=now)
        row["day"] = days[row["msgid"]]
        rows.setdefault((row["msgid"], row["event_key"]), row)  # once per batch too
    ordered = [rows[key] for key in sorted(rows)]
    bulk = statements(session)
    inserted = {(msgid, key) for msgid, key in session.execute(bulk.add_events, ordered)}
    new_rows = [row for row in ordered if (row["msgid"], row["event_key"]) in inserted]
    targets = _fold_targets(new_rows, updated_at=now)
    if targets:
        session.execute(bulk.merge_targets, targets)
    return Counter(
        (row["sender"], row["wechatwk_sender"] is not None, row["type"]) for row in new_rows
    )


_DAYS = select(MESSAGE.c.msgid, MESSAGE.c.day).where(
    MESSAGE.c.msgid.in_(bindparam("msgids", expanding=True))
)


def _message_days(session: Session, msgids: set[str]) -> dict[str, int]:
    """Each message's day (the messages were claimed earlier in this transaction)."""
    return {msgid: day for msgid, day in session.execute(_DAYS, {"msgids": sorted(msgids)})}


def _event_row(record: dict[str, Any], *, channelkey: str, received_at: datetime) -> dict[str, Any]:
    """The event row of a checked record (the PostgreSQL statement's ``extracted``)."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    sent_time = record.get("sent_time")
    if sent_time is None:
        occurred_at = received_at
    else:
        seconds = sent_time / 1000 if sent_time >= MILLISECONDS_FROM else sent_time
        occurred_at = datetime.fromtimestamp(seconds, UTC)
    error = record.get("error") or {}
    platform = record.get("app_platform")
    return {
        "msgid": record["msgid"],
        "event_key": digest(canonical.encode()),
        "type": record["type"],
        "channelkey": channelkey,
        "userid": record.get("userid") or None,  # UMS sends "" for "not applicable"
        "sender_id": record.get("sender_id") or None,
        "sender": record.get("sender"),
        "wechatwk_sender": record.get("wechatwk_sender"),
        "app_platform": None if platform is None else str(platform),
        "app_sender": record.get("app_sender"),
        "sent_time": sent_time,
        "occurred_at": occurred_at,
        "error_code": None if error.get("code") is None else int(error["code"]),
        "error_message": error.get("message"),
        "params": record.get("params"),
        "raw": record,
        "received_at": received_at,
    }


def _fold_targets(
    events: Sequence[dict[str, Any]], *, updated_at: datetime
) -> list[dict[str, Any]]:
    """One row per target: its best status among ``events`` and how many there were."""
    targets: dict[tuple[str, str, int], dict[str, Any]] = {}
    for ev in events:
        recipient = ev["userid"] or ev["sender_id"]
        if recipient is None:
            continue  # an event of the message as a whole: stored, but no target
        sender = NO_SENDER if ev["sender"] is None else ev["sender"]
        rank = RANK_BY_TYPE[ev["type"]]
        current = targets.setdefault(
            (ev["msgid"], recipient, sender),
            {
                "msgid": ev["msgid"],
                "recipient": recipient,
                "sender": sender,
                "userid": None,
                "sender_id": None,
                "wechatwk_sender": None,
                "type": ev["type"],
                "rank": rank,
                "reached_at": ev["occurred_at"],
                "event_count": 0,
                "updated_at": updated_at,
                "day": ev["day"],
                **_NO_STAGES,
            },
        )
        _merge_stage(current, ev)
        current["event_count"] += 1
        current["userid"] = current["userid"] or ev["userid"]
        current["sender_id"] = current["sender_id"] or ev["sender_id"]
        if current["wechatwk_sender"] is None:
            current["wechatwk_sender"] = ev["wechatwk_sender"]
        if rank > current["rank"] or (
            rank == current["rank"] and ev["occurred_at"] < current["reached_at"]
        ):
            current.update(type=ev["type"], rank=rank, reached_at=ev["occurred_at"])
    return [targets[key] for key in sorted(targets)]


_NO_STAGES = {
    column: None for stage in STAGES for column in (stage.type, stage.at, *stage.error_columns)
}


def _merge_stage(target: dict[str, Any], ev: dict[str, Any]) -> None:
    """Fold an event into its stage of ``target`` by the status rule."""
    stage = STAGE_BY_TYPE[ev["type"]]
    held = target[stage.type]
    if (
        held is None
        or ev["type"] < held
        or (ev["type"] == held and ev["occurred_at"] < target[stage.at])
    ):
        target[stage.type] = ev["type"]
        target[stage.at] = ev["occurred_at"]
        if stage.error_columns:
            failed = ev["type"] == stage.failure
            code, message = stage.error_columns
            target[code] = ev["error_code"] if failed else None
            target[message] = ev["error_message"] if failed else None
