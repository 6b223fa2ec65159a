"""The bulk statements of the intake and of recorded sends, built once per dialect, and
the rule that merges a proposed target row into the stored one."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    case,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sender.ums.protocol import STATUS_INFO, Stage

from ..models import Event, KeptSummary, Message, MessageActivity, Quarantine, Target

MESSAGE: Table = Message.__table__  # type: ignore[attr-defined]
EVENT: Table = Event.__table__  # type: ignore[attr-defined]
TARGET: Table = Target.__table__  # type: ignore[attr-defined]
QUARANTINE: Table = Quarantine.__table__  # type: ignore[attr-defined]
ACTIVITY: Table = MessageActivity.__table__  # type: ignore[attr-defined]
KEPT: Table = KeptSummary.__table__  # type: ignore[attr-defined]
# Slots of a message's activity count: concurrent sessions (PostgreSQL server
# processes) bump one row each, by process id, and so seldom wait for one another.
ACTIVITY_SLOTS = 64

# What the intake tells of the events it stored: how many of each kind, a kind being
# the record's sender (None: it named none), whether it named a wechatwk_sender (WeCom
# or 5G on sender 9) and its type; enough for metrics by channel and status.
StoredKind = tuple[int | None, bool, int]

NO_SENDER = -1  # the records name no channel

# sent_time at or above this is in milliseconds (1e11 seconds is the year 5138).
MILLISECONDS_FROM = 10**11


def of_message(table: Table, msgid: str, day: int | None = None) -> Any:
    """The rows of ``table`` (event, target) of one message, named with its day as
    well: on PostgreSQL the query then reads that day's partition alone. Give ``day``
    when the message row was read already: a constant day also spares the planner the
    other partitions."""
    known: Any = day
    if day is None:
        known = select(MESSAGE.c.day).where(MESSAGE.c.msgid == msgid).scalar_subquery()
    return and_(table.c.msgid == msgid, table.c.day == known)


def digest(data: bytes) -> str:
    """Short hex digest used for deduplication keys."""
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True)
class StageColumns:
    """A stage's columns on the target table and the types it holds."""

    name: str  # validation, submission, delivery, engagement, withdrawal
    ok: int
    failure: int | None  # engagement has none

    @property
    def type(self) -> str:
        return f"{self.name}_type"

    @property
    def at(self) -> str:
        return f"{self.name}_at"

    @property
    def error_columns(self) -> tuple[str, ...]:
        """The error's code and message columns (none for engagement)."""
        if self.failure is None:
            return ()
        return (f"{self.name}_error_code", f"{self.name}_error_message")


def _stages() -> tuple[StageColumns, ...]:
    by_stage: dict[Stage, dict[bool, int]] = {}
    for type_, info in STATUS_INFO.items():
        by_stage.setdefault(info.stage, {})[info.ok] = int(type_)
    return tuple(
        StageColumns(stage.name.lower(), types[True], types.get(False))
        for stage, types in sorted(by_stage.items())
    )


STAGES: tuple[StageColumns, ...] = _stages()
STAGE_BY_TYPE: dict[int, StageColumns] = {
    type_: stage for stage in STAGES for type_ in (stage.ok, stage.failure) if type_ is not None
}


def merge_stages(new: Any, old: Any) -> dict[str, Any]:
    """SET clause merging each stage of a proposed target row into the stored one by the
    status rule: a success beats a failure, an equal status keeps the earlier time (and
    that time's error); two failures at the same time keep the lower error
    (:func:`lower_error`), so that the order they arrive in never decides."""
    merged: dict[str, Any] = {}
    for stage in STAGES:
        new_type, old_type = new[stage.type], old[stage.type]
        same_time = and_(new_type == old_type, new[stage.at] == old[stage.at])
        better = or_(
            and_(new_type.is_not(None), old_type.is_(None)),
            new_type < old_type,
            and_(new_type == old_type, new[stage.at] < old[stage.at]),
            and_(same_time, lower_error(new, old, stage)) if stage.error_columns else false(),
        )
        for column in (stage.type, stage.at, *stage.error_columns):
            merged[column] = case((better, new[column]), else_=old[column])
    return merged


def lower_error(new: Any, old: Any, stage: StageColumns) -> Any:
    """Whether ``new``'s error of ``stage`` comes before ``old``'s: by code, then by
    message, none before any (the order :func:`error_order` sorts a batch's failures
    in)."""
    code, message = stage.error_columns
    new_code, new_message = new[code], new[message]
    old_code, old_message = old[code], old[message]
    return or_(
        and_(new_code.is_(None), old_code.is_not(None)),
        new_code < old_code,
        and_(
            new_code.is_not_distinct_from(old_code),
            or_(and_(new_message.is_(None), old_message.is_not(None)), new_message < old_message),
        ),
    )


def error_order(code: Any, message: Any) -> tuple[Any, Any]:
    """ORDER BY terms putting failures of one time in :func:`lower_error`'s order."""
    return code.asc().nulls_first(), message.asc().nulls_first()


def merge_target(stmt: Any) -> dict[str, Any]:
    """SET clause merging a proposed target row (``excluded``) into the stored one:
    the status only moves to a higher rank; an equal rank keeps the earlier time."""
    new, old = stmt.excluded, TARGET.c
    # Every expression sees the row as it was before this update, and the row is
    # locked (on SQLite, the whole database is) while it is evaluated.
    ahead = new.rank > old.rank
    return {
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
        "wechatwk_sender": func.coalesce(old.wechatwk_sender, new.wechatwk_sender),
        "updated_at": new.updated_at,
        **merge_stages(new, old),
    }


@dataclass(frozen=True)
class _Statements:
    keep_quarantined: Any  # insert, skip kept
    add_messages: Any  # insert, skip known, return the msgids inserted
    record_send: Any  # upsert the send facts of a message


@functools.cache
def _statements_for(dialect: str) -> _Statements:
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    return _Statements(
        keep_quarantined=insert(QUARANTINE).on_conflict_do_nothing(
            index_elements=[QUARANTINE.c.quarantine_key]
        ),
        add_messages=insert(MESSAGE)
        .on_conflict_do_nothing(index_elements=[MESSAGE.c.msgid])
        .returning(MESSAGE.c.msgid),
        record_send=_record_send_statement(insert),
    )


def _record_send_statement(insert: Any) -> Any:
    statement = insert(MESSAGE)
    new, old = statement.excluded, MESSAGE.c
    sent_facts = (
        "provider",
        "channelkey",
        "sendno",
        "params",
        "request",
        "sent_at",
        "send_code",
        "send_message",
        "send_id",
        "part",
        "send_state",
        "send_deadline",
    )
    return statement.on_conflict_do_update(
        index_elements=[MESSAGE.c.msgid],
        set_={
            **{name: new[name] for name in sent_facts},
            # Known since the earlier of: the send, the first callback.
            "created_at": case(
                (new.created_at < old.created_at, new.created_at), else_=old.created_at
            ),
        },
    )


def statements(session: Session) -> _Statements:
    """The bulk statements for the session's database, built once per dialect."""
    return _statements_for(session.get_bind().dialect.name)
