"""Reads the web UI needs beside the read API's: the quarantine, and a recipient's
targets across messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .keyset import Page
from .read import target_of
from .schemas.messages import Target
from .store import MESSAGE, QUARANTINE, TARGET

QUARANTINE_PAGE = 50
RECIPIENT_PAGE = 100


@dataclass(frozen=True)
class ReasonCount:
    """One quarantine reason: how many records it holds and when the newest came."""

    reason: str
    records: int
    newest: datetime


@dataclass(frozen=True)
class QuarantinedRecord:
    """One quarantined input, kept verbatim."""

    id: int
    reason: str
    channelkey: str | None
    received_at: datetime
    raw: str


@dataclass(frozen=True)
class RecipientTarget:
    """One of a recipient's targets, with the message it belongs to."""

    msgid: str
    sendno: str | None
    created_at: datetime
    target: Target


def quarantine_reasons(*, session: Session) -> list[ReasonCount]:
    """Every quarantine reason with its count, the most frequent first."""
    rows = session.execute(
        select(QUARANTINE.c.reason, func.count(), func.max(QUARANTINE.c.received_at))
        .group_by(QUARANTINE.c.reason)
        .order_by(func.count().desc(), QUARANTINE.c.reason)
    )
    return [ReasonCount(reason, n, newest) for reason, n, newest in rows]


def quarantined(
    *,
    session: Session,
    reason: str | None = None,
    limit: int = QUARANTINE_PAGE,
    before: int | None = None,
) -> Page[QuarantinedRecord]:
    """The newest quarantined records (of one reason), paged by id: ``before`` is the
    cursor a previous page gave."""
    query = select(QUARANTINE)
    if reason is not None:
        query = query.where(QUARANTINE.c.reason == reason)
    if before is not None:
        query = query.where(QUARANTINE.c.id < before)
    rows = session.execute(query.order_by(QUARANTINE.c.id.desc()).limit(limit + 1)).mappings()
    found = [
        QuarantinedRecord(r["id"], r["reason"], r["channelkey"], r["received_at"], r["raw"])
        for r in rows
    ]
    more = len(found) > limit
    return Page(found[:limit], str(found[limit - 1].id) if more else None)


def recipient_targets(
    *, session: Session, recipient: str, limit: int = RECIPIENT_PAGE
) -> list[RecipientTarget]:
    """A recipient's targets on every message, the newest message first (``limit`` at most)."""
    query = (
        select(TARGET, MESSAGE.c.sendno, MESSAGE.c.created_at)
        .join(MESSAGE, MESSAGE.c.msgid == TARGET.c.msgid)
        .where(TARGET.c.recipient == recipient)
        .order_by(MESSAGE.c.created_at.desc(), TARGET.c.msgid, TARGET.c.sender)
        .limit(limit)
    )
    return [
        RecipientTarget(row["msgid"], row["sendno"], row["created_at"], target_of(row))
        for row in session.execute(query).mappings()
    ]
