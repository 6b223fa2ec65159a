"""Stale targets: recipients UMS still owes a report on, and has not reported on for
``STALE_AFTER``.

A target is waiting while its current status is not final: ``target_valid`` (UMS took
the recipient; the channel's submission report is to come) or ``submitted`` (the
channel took it; its delivery report is to come). Every other status is final: a
failure ends the target, ``delivered`` owes nothing more (a click may or may not
follow), ``clicked`` and the withdrawal statuses come last. A waiting target is stale
when nothing new arrived for it (its ``updated_at``, moved by every new event of the
target and never by a duplicate) for ``stale_after``.

The targets filter and the metric go through the target index on (msgid, type, ...):
a message's waiting targets are found without reading its finished ones. A summary
counts them in its one grouped read of the message's targets (receiver.summary).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session

from sender.ums.protocol import StatusType

from .config import DEFAULT_STALE_AFTER_MINUTES
from .funnel import shown_target
from .models import day_of
from .store import MESSAGE, TARGET

# The statuses after which UMS still has a report to make.
WAITING_TYPES: Final[tuple[int, ...]] = (int(StatusType.TARGET_VALID), int(StatusType.SUBMITTED))
DEFAULT_STALE_AFTER: Final = timedelta(minutes=DEFAULT_STALE_AFTER_MINUTES)
# The metric looks at the messages of this recent past only (see stale_targets).
METRIC_HORIZON: Final = timedelta(days=7)


def is_stale(*, stale_after: timedelta, now: datetime) -> ColumnElement[bool]:
    """Whether a target row is stale at ``now``."""
    return quiet_since(now - stale_after)


def quiet_since(moment: Any) -> ColumnElement[bool]:
    """Whether a target row waits and nothing new came for it since ``moment`` (a time,
    or a parameter for one)."""
    return and_(TARGET.c.type.in_(WAITING_TYPES), TARGET.c.updated_at < moment)


def stale_count(
    waiting: Sequence[tuple[datetime, int]], *, stale_after: timedelta, now: datetime
) -> int:
    """How many of a message's waiting targets, counted by the time nothing new came
    for them since (``updated_at``), are stale at ``now``: the counts hold until
    something new is stored for the message (its summary reads them so)."""
    quiet_since = now - stale_after
    return sum(n for updated_at, n in waiting if updated_at < quiet_since)


def stale_targets(
    session: Session,
    *,
    stale_after: timedelta,
    now: datetime,
    horizon: timedelta = METRIC_HORIZON,
) -> int:
    """Stale targets across the messages this service came to know of within
    ``horizon`` before ``now`` (for a metric read at every scrape).

    Bounded by the recent messages, not by the whole target table: the messages come
    from their creation-time index, their waiting targets from the (msgid, type, ...)
    index. A target that waited past the horizon is no longer late but lost; the
    summary of its message still counts it.
    """
    since = now - horizon
    recent = select(MESSAGE.c.msgid).where(MESSAGE.c.created_at >= since)
    count = session.execute(
        select(func.count())
        .select_from(TARGET)
        .where(
            TARGET.c.msgid.in_(recent.scalar_subquery()),
            # A message's day is never before its created_at's: on PostgreSQL the
            # partitions of older days are not read at all.
            TARGET.c.day >= day_of(since),
            is_stale(stale_after=stale_after, now=now),
            shown_target(),
        )
    ).scalar_one()
    return int(count)
