"""Read side: message summaries, timelines, target statuses and message lists.

Every list is paged by keyset (the last row's sort key, sent back as an opaque
cursor), so a page never repeats or skips a row however many arrive meanwhile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from sender.ums.protocol import (
    AMBIGUOUS_SENDER,
    SENDER_BY_CHANNEL,
    STATUS_BY_TYPE,
    TYPE_BY_STATUS,
    channel_name,
    platform_name,
    vendor_name,
)

from .funnel import shown_target
from .keyset import (
    Page,
    cursor_datetime,
    cursor_int,
    cursor_string,
    decode,
    encode,
    page,
    past,
)
from .models import Message
from .schemas.funnel import StageName
from .schemas.messages import (
    Event,
    EventError,
    MessageSummary,
    StageOutcome,
    Target,
)
from .schemas.queries import DEFAULT_LIMIT
from .stale import DEFAULT_STALE_AFTER, is_stale
from .store import EVENT, MESSAGE, STAGE_BY_TYPE, STAGES, TARGET, of_message
from .summary import summaries


def message_known(*, session: Session, msgid: str) -> bool:
    """Whether anything is known of this message (sent here, or heard of)."""
    return session.get(Message, msgid) is not None


def message_day(*, session: Session, msgid: str) -> int | None:
    """The day a message's rows are kept under (None: no such message). Named in the
    reads of its events and targets, it lets PostgreSQL plan them on one partition."""
    day: int | None = session.scalar(select(MESSAGE.c.day).where(MESSAGE.c.msgid == msgid))
    return day


def message_summary(
    *, session: Session, msgid: str, stale_after: timedelta = DEFAULT_STALE_AFTER
) -> MessageSummary | None:
    """Everything known about one message, or None when nothing is."""
    message = session.get(Message, msgid)
    if message is None:
        return None
    return summaries(session, [message], detailed=True, stale_after=stale_after)[0]


def timeline(
    *, session: Session, msgid: str, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Event]:
    """A message's events in time order (occurred_at, then arrival, then lifecycle)."""
    # UMS times are whole seconds: within one second and one arrival, the status
    # type (which follows the lifecycle) keeps submitted before delivered.
    key = (EVENT.c.occurred_at, EVENT.c.received_at, EVENT.c.type, EVENT.c.event_key)
    after = None
    if cursor:  # a bad cursor is refused whether or not the message is known
        occurred, received, type_, event_key = decode(cursor, "t", 4)
        after = (
            cursor_datetime(occurred),
            cursor_datetime(received),
            cursor_int(type_),
            cursor_string(event_key),
        )
    day = message_day(session=session, msgid=msgid)
    if day is None:
        return Page([], None)  # every event belongs to a message row
    query = select(*EVENT_SHOWN).where(of_message(EVENT, msgid, day))
    if after is not None:
        query = query.where(past(key, after))
    rows = session.execute(query.order_by(*key).limit(limit + 1)).mappings().all()
    return page(
        [event_of(row) for row in rows[:limit]],
        rows,
        limit,
        lambda row: encode(
            "t",
            [
                row["occurred_at"].isoformat(),
                row["received_at"].isoformat(),
                row["type"],
                row["event_key"],
            ],
        ),
    )


# Built once: the hiding of UMS-level rows is a subquery on an alias, costly to build
# again at every page.
_SHOWN_ON_DAYS = shown_target(bindparam("shown_days", expanding=True))


def targets(
    *,
    session: Session,
    msgid: str,
    status: str | None = None,
    has: Sequence[str] = (),
    lacks: Sequence[str] = (),
    channel: str | None = None,
    error_code: int | None = None,
    stale: bool | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    now: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[Target]:
    """A message's targets with their stages, optionally only those in a current
    ``status``, that reached every status in ``has`` and none in ``lacks``, on a
    ``channel``, that failed with ``error_code`` at any stage, or that are (or are not)
    ``stale`` at ``now`` (:mod:`receiver.stale`)."""
    key = (TARGET.c.recipient, TARGET.c.sender)
    after = None
    if cursor:  # a bad cursor is refused whether or not the message is known
        recipient, sender = decode(cursor, "r", 2)
        after = (cursor_string(recipient), cursor_int(sender))
    day = message_day(session=session, msgid=msgid)
    if day is None:
        return Page([], None)  # every target belongs to a message row
    query = select(TARGET).where(of_message(TARGET, msgid, day), _SHOWN_ON_DAYS)
    if status is not None:
        query = query.where(TARGET.c.type == TYPE_BY_STATUS[status])
    for name in has:
        query = query.where(_reached(name))
    for name in lacks:
        query = query.where(~_reached(name))
    if channel is not None:
        query = query.where(on_channel(channel))
    if error_code is not None:
        query = query.where(
            or_(*(TARGET.c[s.error_columns[0]] == error_code for s in STAGES if s.error_columns))
        )
    if stale is not None:
        stale_now = is_stale(stale_after=stale_after, now=now or datetime.now(UTC))
        query = query.where(stale_now if stale else ~stale_now)
    if after is not None:
        query = query.where(past(key, after))
    query = query.order_by(*key).limit(limit + 1)
    rows = session.execute(query, {"shown_days": [day]}).mappings().all()
    return page(
        [target_of(row) for row in rows[:limit]],
        rows,
        limit,
        lambda row: encode("r", [row["recipient"], row["sender"]]),
    )


def list_messages(
    *,
    session: Session,
    sendno: str | None = None,
    send_id: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    params: Mapping[str, str] | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[MessageSummary]:
    """Message summaries, newest first, filtered by sendno, send, a current status among
    the targets, creation time (since inclusive, until exclusive) and params."""
    key = (MESSAGE.c.created_at, MESSAGE.c.msgid)
    query = select(Message)
    if sendno is not None:
        query = query.where(MESSAGE.c.sendno == sendno)
    if send_id is not None:
        query = query.where(MESSAGE.c.send_id == send_id)
    if status is not None:
        query = query.where(
            exists().where(
                TARGET.c.msgid == MESSAGE.c.msgid,
                TARGET.c.type == TYPE_BY_STATUS[status],
                shown_target(),
            )
        )
    if since is not None:
        query = query.where(MESSAGE.c.created_at >= since)
    if until is not None:
        query = query.where(MESSAGE.c.created_at < until)
    for name, value in (params or {}).items():
        query = query.where(_param_is(session, name, value))
    if cursor:
        created, msgid = decode(cursor, "m", 2)
        query = query.where(
            past(key, (cursor_datetime(created), cursor_string(msgid)), descending=True)
        )
    messages = session.scalars(query.order_by(*(k.desc() for k in key)).limit(limit + 1)).all()
    return page(
        summaries(session, messages[:limit], stale_after=stale_after),
        messages,
        limit,
        lambda m: encode("m", [m.created_at.isoformat(), m.msgid]),
    )


# An event's columns but the raw record: all that a page shows and its cursor needs.
# (The raw JSON is the widest column, and decoding it costs more than the rest.)
EVENT_SHOWN: Final = tuple(column for column in EVENT.columns if column.name != "raw")


def event_of(row: Mapping[Any, Any]) -> Event:
    """The API's view of one stored event."""
    has_error = row["error_code"] is not None or row["error_message"] is not None
    return Event(
        type=row["type"],
        status=STATUS_BY_TYPE[row["type"]],  # type: ignore[arg-type]
        userid=row["userid"],
        sender_id=row["sender_id"],
        sender=row["sender"],
        channel=channel_name(row["sender"], wechatwk_sender=row["wechatwk_sender"]),
        app_platform=platform_name(row["app_platform"]),
        app_vendor=vendor_name(row["app_sender"]),
        occurred_at=row["occurred_at"],
        received_at=row["received_at"],
        error=EventError(code=row["error_code"], message=row["error_message"])
        if has_error
        else None,
        params=row["params"],
    )


def target_of(row: Mapping[Any, Any]) -> Target:
    """The API's view of one target's current status."""
    sender = None if row["sender"] < 0 else row["sender"]
    return Target(
        recipient=row["recipient"],
        userid=row["userid"],
        sender_id=row["sender_id"],
        sender=sender,
        channel=channel_name(sender, wechatwk_sender=row["wechatwk_sender"]),
        status=STATUS_BY_TYPE[row["type"]],  # type: ignore[arg-type]
        reached_at=row["reached_at"],
        event_count=row["event_count"],
        stages=stages_of(row),
    )


def stages_of(row: Mapping[Any, Any]) -> dict[StageName, StageOutcome]:
    """A target row's stages that were heard of."""
    stages: dict[StageName, StageOutcome] = {}
    for stage in STAGES:
        type_ = row[stage.type]
        if type_ is None:
            continue
        error = None
        if type_ == stage.failure:
            code, message = (row[column] for column in stage.error_columns)
            error = EventError(code=code, message=message)
        stages[stage.name] = StageOutcome(  # type: ignore[index]
            status=STATUS_BY_TYPE[type_],  # type: ignore[arg-type]
            at=row[stage.at],
            error=error,
        )
    return stages


def _reached(status: str) -> ColumnElement[bool]:
    """Whether a target's stage holds this status (a stage keeps its success over a
    failure, so a target that failed and later succeeded reached only the success)."""
    type_ = TYPE_BY_STATUS[status]
    return func.coalesce(TARGET.c[STAGE_BY_TYPE[type_].type] == type_, False)


def on_channel(name: str) -> ColumnElement[bool]:
    """Targets on the channel of this name (as :func:`channel_name` names them)."""
    sender, wechatwk = TARGET.c.sender, TARGET.c.wechatwk_sender
    conditions = []
    if name in SENDER_BY_CHANNEL:
        conditions.append(sender == SENDER_BY_CHANNEL[name])
    if name in ("wechatwk", "5g"):  # sender 9: settled by wechatwk_sender
        present = wechatwk.is_not(None) if name == "wechatwk" else wechatwk.is_(None)
        conditions.append(and_(sender == AMBIGUOUS_SENDER, present))
    if name.startswith("unknown:"):
        conditions.append(sender == int(name.removeprefix("unknown:")))
    return or_(false(), *conditions)


def _param_is(session: Session, name: str, value: str) -> ColumnElement[bool]:
    """``params[name]`` equals ``value``, given as text: ``123`` matches both the
    string "123" and the number 123, as a query string cannot tell them apart."""
    if session.get_bind().dialect.name == "postgresql":
        # Containment, which the GIN index on message.params serves.
        params = type_coerce(MESSAGE.c.params, JSONB)
        alternatives = [params.contains({name: value})]
        number = _json_number(value)
        if number is not None:
            alternatives.append(params.contains({name: number}))
        return or_(*alternatives)
    # SQLite's json_extract returns numbers as numbers: compare as text.
    return cast(MESSAGE.c.params[name].as_string(), Text) == value


def _json_number(value: str) -> int | float | None:
    """The JSON number ``value`` spells, if it spells one."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    is_number = isinstance(parsed, int | float) and not isinstance(parsed, bool)
    return parsed if is_number and math.isfinite(parsed) else None
