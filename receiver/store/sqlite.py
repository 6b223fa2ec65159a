"""SQLite's statements of the intake: a batch's events in one multi-row INSERT, its
targets in one INSERT ... SELECT that folds the new events in SQL.

:func:`add_events_sql` inserts the batch's event rows (one ``VALUES`` group each, their
values bound as they are: text, integers and NULL, nothing left for a type to convert),
skips those stored before or earlier in the same statement, and returns each new
event's rowid and kind. The values that depend on a record alone (its key, its JSON,
its time) are made before the batch's transaction begins, when the intake gives a
:class:`PreparedRecord`: the transaction holds the database's write lock, which one
writer at a time can hold. :data:`MERGE_TARGETS` reads those events back by rowid, folds
them per target and merges the targets by :func:`merge_target`, the rule the
PostgreSQL statement uses too. SQLite has no data-modifying CTEs, so the two cannot be
one statement; both run in the batch's transaction, which holds the database's write
lock from its start.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, func, literal_column, select, true
from sqlalchemy.dialects import sqlite
from sqlalchemy.types import Integer, Text

from ..status import RANK_BY_TYPE
from .statements import (
    EVENT,
    MILLISECONDS_FROM,
    NO_SENDER,
    STAGES,
    TARGET,
    digest,
    error_order,
    merge_target,
)

# The event columns in the order event_values gives them.
EVENT_COLUMNS = (
    "msgid",
    "event_key",
    "type",
    "channelkey",
    "userid",
    "sender_id",
    "sender",
    "wechatwk_sender",
    "app_platform",
    "app_sender",
    "sent_time",
    "occurred_at",
    "error_code",
    "error_message",
    "params",
    "raw",
    "received_at",
    "day",
)
# Rows a statement inserts at most: 18,000 parameters, under the 32,766 SQLite allows.
MAX_ROWS = 1000
_EVENT_KEY = ", ".join(column.name for column in EVENT.primary_key.columns)


@functools.lru_cache(maxsize=32)
def add_events_sql(rows: int) -> str:
    """INSERT INTO event (EVENT_COLUMNS) VALUES (...) x ``rows`` ON CONFLICT DO NOTHING
    RETURNING rowid, sender, wechatwk_sender IS NOT NULL, type: the rowid and kind of
    each event inserted (an event stored before, or earlier in the statement, is
    skipped). Cached by size: SQLite keeps the prepared statement too."""
    if not 0 < rows <= MAX_ROWS:
        raise ValueError(f"{rows} rows: one statement inserts 1 to {MAX_ROWS}")
    group = "(" + ", ".join("?" * len(EVENT_COLUMNS)) + ")"
    return (
        f"INSERT INTO event ({', '.join(EVENT_COLUMNS)}) VALUES {', '.join([group] * rows)} "
        f"ON CONFLICT ({_EVENT_KEY}) DO NOTHING "
        "RETURNING rowid, sender, wechatwk_sender IS NOT NULL, type"
    )


def event_values(
    record: dict[str, Any], *, channelkey: str, received_at: str, day: int
) -> tuple[Any, ...]:
    """The event row of a checked record, in EVENT_COLUMNS order, as SQLite stores it
    (the PostgreSQL statement's ``extracted``): times as :func:`time_text`, JSON as text.
    ``received_at`` is given as :func:`time_text` of the arrival. A
    :class:`PreparedRecord` of ``channelkey`` brings the values that depend on the
    record alone, made before the batch's transaction began."""
    if type(record) is PreparedRecord and record.channelkey == channelkey:
        head, occurred, tail = record.head, record.occurred, record.tail
    else:
        head, occurred, tail = _own_values(record, channelkey)
    return (*head, received_at if occurred is None else occurred, *tail, received_at, day)


class PreparedRecord(dict[str, Any]):
    """A checked record (the same keys and values) that holds its event row's values
    that depend on the record and its channel alone: what :func:`event_values` would
    otherwise compute while the batch holds the database's write lock."""

    __slots__ = ("channelkey", "head", "occurred", "tail")

    def __init__(self, record: dict[str, Any], *, channelkey: str, strict: bool = False) -> None:
        """With ``strict``, raises ValueError for a record whose JSON text holds what a
        database cannot store: a number beyond a double, a lone UTF-16 surrogate, a NUL
        character (or the text of its escape)."""
        super().__init__(record)
        self.channelkey = channelkey
        self.head, self.occurred, self.tail = _own_values(record, channelkey, strict)


def _own_values(
    record: dict[str, Any], channelkey: str, strict: bool = False
) -> tuple[tuple[Any, ...], str | None, tuple[Any, ...]]:
    """A record's event values before ``occurred_at`` (msgid to sent_time), its
    ``occurred_at`` (None: the arrival's), and those after it (error_code to raw)."""
    canonical = (_strict_canonical_json if strict else canonical_json)(record)
    if strict and "\\u0000" in canonical:
        raise ValueError("the record may hold a NUL character")
    sent_time = record.get("sent_time")
    error = record.get("error") or {}
    code = error.get("code")
    platform = record.get("app_platform")
    params = record.get("params")
    head = (
        record["msgid"],
        digest(canonical.encode()),
        record["type"],
        channelkey,
        record.get("userid") or None,  # UMS sends "" for "not applicable"
        record.get("sender_id") or None,
        record.get("sender"),
        record.get("wechatwk_sender"),
        None if platform is None else str(platform),
        record.get("app_sender"),
        sent_time,
    )
    tail = (
        None if code is None else int(code),
        error.get("message"),
        None if params is None else json.dumps(params),
        canonical,
    )
    return head, None if sent_time is None else _occurred_text(sent_time), tail


# The key of a record: the digest of this JSON text of it. A retry of a record, stored
# by any release before, has the same.
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The same text, refusing a number beyond a double (which canonical_json writes as
# Infinity).
_strict_canonical_json = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


def time_text(moment: datetime) -> str:
    """A time as SQLAlchemy stores a UTC DateTime on SQLite: ``YYYY-MM-DD
    HH:MM:SS.ffffff``, in UTC, so that text order is time order."""
    moment = moment.astimezone(UTC)
    return _text(moment, moment.microsecond)


def _text(moment: datetime, microsecond: int) -> str:
    """``moment`` (UTC) to the second, then ``microsecond``, as SQLite's times are kept."""
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{microsecond:06d}"
    )


# The records of a batch come from a few seconds (a broadcast's, all of them): each
# sent_time is formatted once, not once a record.
@functools.lru_cache(maxsize=4096)
def _occurred_text(sent_time: int) -> str:
    """:func:`time_text` of a record's sent_time (seconds, or from MILLISECONDS_FROM on,
    milliseconds)."""
    seconds, milliseconds = (
        divmod(sent_time, 1000) if sent_time >= MILLISECONDS_FROM else (sent_time, 0)
    )
    return _text(datetime.fromtimestamp(seconds, UTC), milliseconds * 1000)


def _constant(value: int) -> Any:
    """An integer written into the statement: the same aggregate written twice is then
    the same expression to SQLite, which computes it once."""
    return literal_column(str(int(value)), Integer)


def _build_merge_targets() -> Any:
    """INSERT INTO target SELECT (the new events folded per target) ON CONFLICT DO UPDATE
    (merge_target); parameters :rowids (a JSON array of the new events' rowids) and
    :updated_at."""
    rowids = func.json_each(bindparam("rowids", type_=Text)).table_valued("value")
    recipient = func.coalesce(EVENT.c.userid, EVENT.c.sender_id)
    sender = func.coalesce(EVENT.c.sender, _constant(NO_SENDER))
    rank = case(
        *((EVENT.c.type == _constant(type_), _constant(r)) for type_, r in RANK_BY_TYPE.items())
    )
    per_target = [EVENT.c.msgid, recipient, sender, EVENT.c.day]
    new = (
        select(
            EVENT.c.msgid,
            recipient.label("recipient"),
            sender.label("sender"),
            EVENT.c.day,
            EVENT.c.userid,
            EVENT.c.sender_id,
            EVENT.c.wechatwk_sender,
            EVENT.c.type,
            rank.label("rank"),
            EVENT.c.occurred_at,
            EVENT.c.error_code,
            EVENT.c.error_message,
            # 1: the earliest of the target's events of its type (of failures at one
            # time, the lowest error: the rule's order).
            func.row_number()
            .over(
                partition_by=[*per_target, EVENT.c.type],
                order_by=[
                    EVENT.c.occurred_at,
                    *error_order(EVENT.c.error_code, EVENT.c.error_message),
                ],
            )
            .label("first"),
        )
        .where(literal_column("event.rowid").in_(select(rowids.c.value)))
        .where(recipient.is_not(None))  # an event of the message as a whole: no target
        .subquery("new")
    )
    # When each type was first reached among the target's new events (NULL: never).
    reached = {
        type_: func.min(new.c.occurred_at).filter(new.c.type == _constant(type_))
        for type_ in RANK_BY_TYPE
    }
    # A rank is one type's: the best type is that of the highest rank, reached when the
    # earliest event of that type happened.
    best = func.max(new.c.rank)
    folded: dict[str, Any] = {
        "msgid": new.c.msgid,
        "recipient": new.c.recipient,
        "sender": new.c.sender,
        "day": new.c.day,
        "userid": func.max(new.c.userid),
        "sender_id": func.max(new.c.sender_id),
        "wechatwk_sender": func.max(new.c.wechatwk_sender),
        "type": case(*((best == _constant(r), _constant(t)) for t, r in RANK_BY_TYPE.items())),
        "rank": best,
        "reached_at": case(*((best == _constant(r), reached[t]) for t, r in RANK_BY_TYPE.items())),
        "event_count": func.count(),
        "updated_at": bindparam("updated_at", type_=TARGET.c.updated_at.type),
        **_stages_of(new, reached),
    }
    target_columns = [c.name for c in TARGET.columns]
    rows = (
        select(*(folded[name] for name in target_columns))
        .select_from(new)
        .where(true())  # SQLite would read ON CONFLICT after a bare FROM as a join's
        .group_by(new.c.msgid, new.c.recipient, new.c.sender, new.c.day)
    )
    upsert = sqlite.insert(TARGET).from_select(target_columns, rows)
    return upsert.on_conflict_do_update(
        index_elements=[TARGET.c.msgid, TARGET.c.recipient, TARGET.c.sender, TARGET.c.day],
        set_=merge_target(upsert),
    )


def _stages_of(new: Any, reached: dict[int, Any]) -> dict[str, Any]:
    """Each stage of a target among its new events, by the status rule: a success (its
    earliest time) beats a failure (its earliest time and error)."""
    columns: dict[str, Any] = {}
    for stage in STAGES:
        ok_at = reached[stage.ok]
        if stage.failure is None:
            columns[stage.type] = case((ok_at.is_not(None), _constant(stage.ok)))
            columns[stage.at] = ok_at
            continue
        failed_at = reached[stage.failure]
        earliest_failure = and_(new.c.type == _constant(stage.failure), new.c.first == _constant(1))
        code, message = stage.error_columns
        columns[stage.type] = case(
            (ok_at.is_not(None), _constant(stage.ok)),
            (failed_at.is_not(None), _constant(stage.failure)),
        )
        columns[stage.at] = func.coalesce(ok_at, failed_at)
        columns[code] = case((ok_at.is_(None), func.max(new.c.error_code).filter(earliest_failure)))
        columns[message] = case(
            (ok_at.is_(None), func.max(new.c.error_message).filter(earliest_failure))
        )
    return columns


MERGE_TARGETS = _build_merge_targets()
