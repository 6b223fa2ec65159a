"""SQLite's store path: a batch's events in one multi-row INSERT that returns the new
ones, its targets folded from those in SQL and merged in one INSERT ... SELECT
(:mod:`receiver.store.sqlite`).

Python builds the event rows, values only (what SQLite's JSON functions would extract
several times slower); the values go to the driver as they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from .sqlite import MAX_ROWS, MERGE_TARGETS, add_events_sql, event_values, time_text
from .statements import ACTIVITY, MESSAGE, StoredKind


def store_events_portable(
    session: Session, records: Sequence[dict[str, Any]], *, channelkey: str, now: datetime
) -> Counter[StoredKind]:
    """Store checked records (their messages claimed already in this transaction) as
    events of ``channelkey``, skipping any stored before or earlier in the batch, and
    merge the new ones into their targets. Returns how many events were new, by kind."""
    days = _message_days(session, {record["msgid"] for record in records})
    received_at = time_text(now)
    connection = session.connection()
    new: list[Any] = []
    for start in range(0, len(records), MAX_ROWS):
        chunk = records[start : start + MAX_ROWS]
        values = [
            value
            for record in chunk
            for value in event_values(
                record, channelkey=channelkey, received_at=received_at, day=days[record["msgid"]]
            )
        ]
        new += connection.exec_driver_sql(add_events_sql(len(chunk)), tuple(values)).all()
    if not new:
        return Counter()
    rowids = "[" + ",".join(str(rowid) for rowid, *_ in new) + "]"
    session.execute(MERGE_TARGETS, {"rowids": rowids, "updated_at": now})
    # One writer at a time: one slot. Every message of the batch counts a batch more
    # (one without new events among them too: its kept summary is read again, no more).
    session.execute(_BUMP, [{"msgid": msgid} for msgid in sorted(days)])
    return Counter((sender, bool(wechatwk), type_) for _, sender, wechatwk, type_ in new)


_BUMP = (
    sqlite.insert(ACTIVITY)
    .values(msgid=bindparam("msgid"), slot=0, batches=1)
    .on_conflict_do_update(
        index_elements=[ACTIVITY.c.msgid, ACTIVITY.c.slot],
        set_={"batches": ACTIVITY.c.batches + 1},
    )
)
_DAYS = select(MESSAGE.c.msgid, MESSAGE.c.day).where(
    MESSAGE.c.msgid.in_(bindparam("msgids", expanding=True))
)


def _message_days(session: Session, msgids: set[str]) -> dict[str, int]:
    """Each message's day (the messages were claimed earlier in this transaction)."""
    return {msgid: day for msgid, day in session.execute(_DAYS, {"msgids": sorted(msgids)})}
