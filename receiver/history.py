"""A recipient's history: its events across all messages, newest first, keyset-paged.

A recipient is named by userid or by sender_id (a phone number, an e-mail address, an
openid): an event is the recipient's when either equals it. Each page reads two index
range scans (``ix_event_userid``, ``ix_event_sender_id``), each in order and stopped at
the page size, merged and deduplicated by a UNION: never a scan of the event table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from .keyset import CursorError, Page, cursor_datetime, cursor_string, decode, encode, page, past
from .read import EVENT_SHOWN, event_of
from .schemas.messages import RecipientEvent
from .schemas.queries import DEFAULT_LIMIT
from .store import EVENT

# Newest first; msgid and event_key (the primary key) make the order total.
_KEY = ("occurred_at", "received_at", "msgid", "event_key")

__all__ = ["CursorError", "recipient_events"]


def recipient_events(
    *, session: Session, recipient: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[RecipientEvent]:
    """The events whose userid or sender_id is ``recipient``, newest first."""
    after: tuple[Any, ...] | None = None
    if cursor:
        occurred, received, msgid, event_key = decode(cursor, "h", 4)
        after = (
            cursor_datetime(occurred),
            cursor_datetime(received),
            cursor_string(msgid),
            cursor_string(event_key),
        )
    if "\x00" in recipient:  # no stored text holds NUL: nobody's history
        return Page([], None)
    by_userid = _newest(EVENT.c.userid == recipient, after, limit).subquery()
    by_sender_id = _newest(EVENT.c.sender_id == recipient, after, limit).subquery()
    merged = union(select(by_userid), select(by_sender_id)).subquery()
    order = [merged.c[name].desc() for name in _KEY]
    keys = select(merged).order_by(*order).limit(limit + 1).subquery()
    query = (
        select(*EVENT_SHOWN)
        .join(
            keys,
            # The whole primary key: on PostgreSQL each row is looked up in its day's
            # partition alone.
            (EVENT.c.msgid == keys.c.msgid)
            & (EVENT.c.event_key == keys.c.event_key)
            & (EVENT.c.day == keys.c.day),
        )
        .order_by(*(EVENT.c[name].desc() for name in _KEY))
    )
    rows = session.execute(query).mappings().all()
    return page(
        [RecipientEvent(msgid=row["msgid"], **dict(event_of(row))) for row in rows[:limit]],
        rows,
        limit,
        lambda row: encode(
            "h",
            [
                row["occurred_at"].isoformat(),
                row["received_at"].isoformat(),
                row["msgid"],
                row["event_key"],
            ],
        ),
    )


def _newest(condition: Any, after: tuple[Any, ...] | None, limit: int) -> Select[Any]:
    """The keys of the first ``limit + 1`` events past ``after`` that meet ``condition``
    (one index range scan, read backwards)."""
    key = [EVENT.c[name] for name in _KEY]
    query = select(*key, EVENT.c.day).where(condition)
    if after is not None:
        # The plain bound on the indexed column keeps the scan a range scan.
        query = query.where(EVENT.c.occurred_at <= after[0], past(key, after, descending=True))
    return query.order_by(*(column.desc() for column in key)).limit(limit + 1)
