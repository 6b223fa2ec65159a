"""Message summaries: counts per status, current target statuses, and the facts of a
send and a withdraw through this service, for any number of messages at once."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from sender.ums.protocol import STATUS_BY_TYPE, STATUSES

from . import kept
from .funnel import among_days, funnel_of, shown_target, stage_sums, timing, top_errors
from .models import Message
from .schemas.messages import (
    MessageSummary,
    SendFacts,
    StatusCounts,
    TargetCounts,
    WithdrawFacts,
)
from .stale import DEFAULT_STALE_AFTER, WAITING_TYPES, stale_count
from .store import EVENT, TARGET


def summaries(
    session: Session,
    messages: Sequence[Message],
    *,
    detailed: bool = False,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> list[MessageSummary]:
    """Summaries of several messages, with a few queries however many there are; a
    ``detailed`` one adds each message's top errors and stage timings. A big message's
    figures are kept once computed and read back while nothing new came for it
    (:mod:`receiver.kept`)."""
    now = datetime.now(UTC)
    # Read before any figure: what is computed below holds at least what this counts.
    counted = kept.activity(session, [m.msgid for m in messages])
    message_of = {m.msgid: m for m in messages}
    figures = {
        msgid: found
        for msgid, found in kept.kept(session, counted).items()
        if not detailed or _has_details(found, message_of[msgid])
    }
    computed = _figures(session, [m for m in messages if m.msgid not in figures], detailed)
    kept.keep(
        session.get_bind(),
        {
            msgid: (counted[msgid], found)
            for msgid, found in computed.items()
            if found.targets >= kept.KEEP_FROM_TARGETS
        },
    )
    figures |= computed
    stale = {
        msgid: stale_count(found.waiting, stale_after=stale_after, now=now)
        for msgid, found in figures.items()
    }
    if not detailed:  # kept figures may hold details a list does not show
        figures = {msgid: _without_details(found) for msgid, found in figures.items()}
    return [_summary(m, figures[m.msgid], stale[m.msgid], now) for m in messages]


def _without_details(found: kept.Figures) -> kept.Figures:
    return found.model_copy(update={"errors": None, "timing": None, "since": None})


def _has_details(found: kept.Figures, message: Message) -> bool:
    """Whether kept figures hold the top errors and the timings a detailed summary of
    ``message`` shows now (counted from its send: one recorded since moves them)."""
    return found.timing is not None and found.since == (message.sent_at or found.first_event_at)


def _figures(
    session: Session, messages: Sequence[Message], detailed: bool
) -> dict[str, kept.Figures]:
    """Each message's figures, computed from its events and targets."""
    msgids = [m.msgid for m in messages]
    if not msgids:
        return {}
    counts = {m: dict.fromkeys(STATUSES, 0) for m in msgids}
    by_status = {m: dict.fromkeys(STATUSES, 0) for m in msgids}
    first: dict[str, datetime] = {}
    last: dict[str, datetime] = {}
    days = sorted({m.day for m in messages if m.day is not None})
    given = {"msgids": msgids, "days": days}
    for msgid, type_, n, earliest, latest in session.execute(_events_statement(), given):
        counts[msgid][STATUS_BY_TYPE[type_]] = n
        first[msgid] = min(first.get(msgid, earliest), earliest)
        last[msgid] = max(last.get(msgid, latest), latest)
    channels: dict[str, dict[tuple[int, bool], list[int]]] = {m: {} for m in msgids}
    waiting: dict[str, Counter[datetime]] = {m: Counter() for m in msgids}
    rows = session.execute(_targets_statement(bool(days)), given)
    for msgid, sender, on_wechatwk, type_, waiting_since, n, *stage_figures in rows:
        by_status[msgid][STATUS_BY_TYPE[type_]] += n
        sums = channels[msgid].setdefault((sender, on_wechatwk), [0] * (1 + len(stage_figures)))
        for index, figure in enumerate((n, *stage_figures)):
            sums[index] += int(figure or 0)
        if waiting_since is not None:
            waiting[msgid][waiting_since] += n
    figures = {}
    for m in messages:
        since = m.sent_at or first.get(m.msgid)
        figures[m.msgid] = kept.Figures(
            counts=counts[m.msgid],
            by_status=by_status[m.msgid],
            first_event_at=first.get(m.msgid),
            last_event_at=last.get(m.msgid),
            funnel=funnel_of(
                [
                    (*channel, total, sums)
                    for channel, (total, *sums) in sorted(channels[m.msgid].items())
                ]
            ),
            waiting=sorted(waiting[m.msgid].items()),
            errors=top_errors(session, m.msgid, m.day) if detailed else None,
            timing=timing(session, m.msgid, since, m.day) if detailed else None,
            since=since if detailed else None,
        )
    return figures


def _summary(m: Message, found: kept.Figures, stale: int, now: datetime) -> MessageSummary:
    return MessageSummary(
        msgid=m.msgid,
        provider=m.provider,
        channelkey=m.channelkey,
        sendno=m.sendno,
        params=m.params,
        created_at=m.created_at,
        sent_at=m.sent_at,
        send=send_facts(m, now),
        withdraw=withdraw_facts(m, now),
        send_id=m.send_id,
        part=m.part,
        counts=StatusCounts(**found.counts),
        targets=TargetCounts(total=found.targets, by_status=StatusCounts(**found.by_status)),
        funnel=found.funnel,
        stale=stale,
        errors=found.errors,
        timing=found.timing,
        first_event_at=found.first_event_at,
        last_event_at=found.last_event_at,
    )


@functools.cache
def _events_statement() -> Select[Any]:
    """The summaries' read of events by type, built once (parameters: the messages'
    msgids and days)."""
    msgids: Any = bindparam("msgids", expanding=True)
    days: Any = bindparam("days", expanding=True)
    return (
        select(
            EVENT.c.msgid,
            EVENT.c.type,
            func.count(),
            func.min(EVENT.c.occurred_at),
            func.max(EVENT.c.occurred_at),
        )
        .where(EVENT.c.msgid.in_(msgids), EVENT.c.day.in_(days))
        .group_by(EVENT.c.msgid, EVENT.c.type)
    )


@functools.cache
def _targets_statement(by_day: bool) -> Select[Any]:
    """The summaries' one read of the shown targets, built once (parameters: the
    messages' msgids and, ``by_day``, their days): grouped by channel, current type
    and, for a waiting target, the time nothing new came for it since, with the
    funnel's :func:`stage_sums`. The counts by status, the funnel and the waiting
    targets are all sums of its groups."""
    days: Any = bindparam("days", expanding=True) if by_day else ()
    waiting_since = case((TARGET.c.type.in_(WAITING_TYPES), TARGET.c.updated_at))
    groups = (
        TARGET.c.msgid,
        TARGET.c.sender,
        TARGET.c.wechatwk_sender.is_not(None),
        TARGET.c.type,
        waiting_since,
    )
    return (
        select(*groups, func.count(), *stage_sums())
        .where(
            TARGET.c.msgid.in_(bindparam("msgids", expanding=True)),
            among_days(TARGET.c.day, days),
            shown_target(days),
        )
        .group_by(*groups)
    )


def send_facts(message: Message, now: datetime) -> SendFacts | None:
    """The send facts of a message row; a request still pending past its deadline was
    cut off (a crash, or the database failing once the provider had answered)."""
    state = message.send_state
    if state is None:
        return None
    text = message.send_message
    if state == "pending" and message.send_deadline is not None and message.send_deadline < now:
        state = "unknown"
        text = text or (
            "outcome unknown (the message may have been sent): no answer was recorded by "
            f"{message.send_deadline.isoformat()}"
        )
    return SendFacts(outcome=state, code=message.send_code, message=text)  # type: ignore[arg-type]


def withdraw_facts(message: Message, now: datetime) -> WithdrawFacts | None:
    """The withdraw facts of a message row, if a withdraw was asked for; one still
    pending past its deadline was cut off, like a send."""
    if message.withdraw_state is None or message.withdraw_requested_at is None:
        return None
    state, text = message.withdraw_state, message.withdraw_message
    deadline = message.withdraw_deadline
    if state == "pending" and deadline is not None and deadline < now:
        state = "unknown"
        text = f"outcome unknown: no answer was recorded by {deadline.isoformat()}"
    return WithdrawFacts(
        state=state,  # type: ignore[arg-type]
        requested_at=message.withdraw_requested_at,
        answered_at=message.withdraw_answered_at,
        code=message.withdraw_code,
        message=text,
    )
