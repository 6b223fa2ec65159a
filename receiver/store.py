"""Bulk writes of the intake hot path: events, target statuses, quarantine.

Two ways to the same rows. PostgreSQL: the whole batch goes to the server as one
JSON parameter, and one statement extracts the fields, inserts the new events,
folds them per target and merges the targets; on a small machine the client's
CPU is what limits intake, and this leaves it nearly nothing to do per record.
SQLite: the rows are built in Python, inserted with RETURNING, folded in Python
and upserted. Both merge targets with the same rule, :func:`_merge_target`.

Every batch takes its row locks in one order, messages, then events, then
targets, each sorted by key, so that concurrent batches that touch the same rows
queue up instead of deadlocking.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    SmallInteger,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from sender.ums.protocol import TRACKING_PARAM

from .models import Event, Message, Quarantine, Target
from .status import RANK_BY_TYPE

MESSAGE: Table = Message.__table__  # type: ignore[attr-defined]
EVENT: Table = Event.__table__  # type: ignore[attr-defined]
TARGET: Table = Target.__table__  # type: ignore[attr-defined]
QUARANTINE: Table = Quarantine.__table__  # type: ignore[attr-defined]

NO_SENDER = -1  # the records name no channel
SYSTEM_SENDER = 0  # UMS itself (validation records, before any channel)
# sent_time at or above this is in milliseconds (1e11 seconds is the year 5138).
MILLISECONDS_FROM = 10**11


def store_events(
    session: Session,
    *,
    records: Sequence[dict[str, Any]],
    records_json: str,
    channelkey: str,
    received_at: datetime,
) -> int:
    """Store checked callback records (``records_json`` is the same list as JSON
    text) as events of ``channelkey``, skipping any already stored, and merge them
    into their targets. Messages not yet known are recorded first. Returns how many
    events were new."""
    if not records:
        return 0
    _add_messages(session, records, channelkey=channelkey, now=received_at)
    if session.get_bind().dialect.name == "postgresql":
        stored: int = session.execute(
            _STORE_POSTGRESQL,
            {"records": records_json, "channelkey": channelkey, "received_at": received_at},
        ).scalar_one()
        return stored
    return _store_events_portable(session, records, channelkey=channelkey, now=received_at)


def _add_messages(
    session: Session, records: Sequence[dict[str, Any]], *, channelkey: str, now: datetime
) -> None:
    """Record the messages of these records that were not known yet, with the params
    their callbacks echo."""
    params: dict[str, Any] = {}
    for record in records:
        if params.get(record["msgid"]) is None:
            params[record["msgid"]] = record.get("params")
    rows = [
        {
            "msgid": msgid,
            "provider": "ums",
            "channelkey": channelkey,
            "params": params[msgid],
            "send_id": _send_id(params[msgid]),
            "created_at": now,
        }
        for msgid in sorted(params)
    ]
    session.execute(_statements(session).add_messages, rows)


def _send_id(params: Any) -> str | None:
    """The send a message belongs to, from the tracking param our sender adds."""
    send_id = params.get(TRACKING_PARAM) if isinstance(params, dict) else None
    return send_id if isinstance(send_id, str) else None


def record_send(
    session: Session,
    *,
    msgid: str,
    provider: str,
    channelkey: str,
    sendno: str | None,
    params: dict[str, Any] | None,
    request: dict[str, Any],
    code: int | None,
    message: str | None,
    send_id: str,
    part: int,
    sent_at: datetime,
) -> None:
    """Record one request this service sent (a ``message`` row): inserted, or merged
    into the row that callbacks created when they arrived first."""
    row = {
        "msgid": msgid,
        "provider": provider,
        "channelkey": channelkey,
        "sendno": sendno,
        "params": params,
        "request": request,
        "sent_at": sent_at,
        "send_code": code,
        "send_message": message,
        "send_id": send_id,
        "part": part,
        "created_at": sent_at,
    }
    session.execute(_statements(session).record_send, [row])


def store_quarantine(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert quarantine rows, skipping any already kept."""
    if rows:
        session.execute(_statements(session).keep_quarantined, rows)


def digest(data: bytes) -> str:
    """Short hex digest used for deduplication keys."""
    return hashlib.sha256(data).hexdigest()[:32]


def _merge_target(stmt: Any) -> dict[str, Any]:
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
        "updated_at": new.updated_at,
    }


# --- PostgreSQL ------------------------------------------------------------


def _build_postgresql_statement() -> Any:
    """WITH new AS (INSERT events ... RETURNING), merged AS (upsert targets folded
    from new) SELECT count(*) FROM new; parameters :records, :channelkey, :received_at."""
    elements = func.jsonb_array_elements(
        cast(bindparam("records", type_=Text), JSONB)
    ).table_valued("value")
    record = type_coerce(elements.c.value, JSONB)
    received_at = bindparam("received_at", type_=EVENT.c.received_at.type)

    def text(name: str) -> Any:
        return record[name].astext

    sent_time = cast(text("sent_time"), BigInteger)
    error = record["error"]
    extracted = {
        "msgid": text("msgid"),
        # jsonb's text is canonical (sorted keys, no spaces): a retry has the same key.
        "event_key": func.md5(cast(record, Text)),
        "type": cast(text("type"), SmallInteger),
        "channelkey": bindparam("channelkey", type_=Text),
        "userid": func.nullif(text("userid"), ""),
        "sender_id": func.nullif(text("sender_id"), ""),
        "sender": cast(text("sender"), SmallInteger),
        "wechatwk_sender": cast(text("wechatwk_sender"), SmallInteger),
        "app_platform": text("app_platform"),
        "app_sender": cast(text("app_sender"), SmallInteger),
        "sent_time": sent_time,
        "occurred_at": case(
            (sent_time.is_(None), received_at),
            (sent_time >= MILLISECONDS_FROM, func.to_timestamp(sent_time / 1000.0)),
            else_=func.to_timestamp(sent_time),
        ),
        "error_code": cast(error["code"].astext, BigInteger),
        "error_message": error["message"].astext,
        "params": case((func.jsonb_typeof(record["params"]) == "object", record["params"])),
        "raw": record,
        "received_at": received_at,
    }
    columns = [c.name for c in EVENT.columns]
    rows = select(*(extracted[name].label(name) for name in columns)).subquery("rows")
    new = (
        postgresql.insert(EVENT)
        .from_select(columns, select(rows).order_by(rows.c.msgid, rows.c.event_key))
        .on_conflict_do_nothing(index_elements=[EVENT.c.msgid, EVENT.c.event_key])
        .returning(*EVENT.columns)
        .cte("new")
    )
    recipient = func.coalesce(new.c.userid, new.c.sender_id)
    sender = func.coalesce(new.c.sender, NO_SENDER)
    rank = case(RANK_BY_TYPE, value=new.c.type)
    per_target = [new.c.msgid, recipient, sender]
    ranked = (
        select(
            new.c.msgid,
            recipient.label("recipient"),
            sender.label("sender"),
            func.max(new.c.userid).over(partition_by=per_target).label("userid"),
            func.max(new.c.sender_id).over(partition_by=per_target).label("sender_id"),
            new.c.type,
            rank.label("rank"),
            new.c.occurred_at.label("reached_at"),
            func.count().over(partition_by=per_target).label("event_count"),
            new.c.received_at.label("updated_at"),
            func.row_number()
            .over(partition_by=per_target, order_by=[rank.desc(), new.c.occurred_at])
            .label("place"),
        )
        .where(recipient.is_not(None))
        .subquery("ranked")
    )
    target_columns = [c.name for c in TARGET.columns]
    best = (
        select(*(ranked.c[name] for name in target_columns))
        .where(ranked.c.place == 1)
        .order_by(ranked.c.msgid, ranked.c.recipient, ranked.c.sender)
    )
    upsert = postgresql.insert(TARGET).from_select(target_columns, best)
    merged = (
        upsert.on_conflict_do_update(
            index_elements=[TARGET.c.msgid, TARGET.c.recipient, TARGET.c.sender],
            set_=_merge_target(upsert),
        )
        .returning(literal_column("1"))
        .cte("merged")
    )
    # Both data-modifying CTEs run to completion whatever the outer query reads.
    return select(func.count()).select_from(new).add_cte(merged)


_STORE_POSTGRESQL = _build_postgresql_statement()


# --- SQLite (and any backend with INSERT ... ON CONFLICT ... RETURNING) -----


def _store_events_portable(
    session: Session, records: Sequence[dict[str, Any]], *, channelkey: str, now: datetime
) -> int:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        row = _event_row(record, channelkey=channelkey, received_at=now)
        rows.setdefault((row["msgid"], row["event_key"]), row)  # once per batch too
    ordered = [rows[key] for key in sorted(rows)]
    statements = _statements(session)
    inserted = {(msgid, key) for msgid, key in session.execute(statements.add_events, ordered)}
    new_rows = [row for row in ordered if (row["msgid"], row["event_key"]) in inserted]
    targets = _fold_targets(new_rows, updated_at=now)
    if targets:
        session.execute(statements.merge_targets, targets)
    return len(inserted)


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
                "type": ev["type"],
                "rank": rank,
                "reached_at": ev["occurred_at"],
                "event_count": 0,
                "updated_at": updated_at,
            },
        )
        current["event_count"] += 1
        current["userid"] = current["userid"] or ev["userid"]
        current["sender_id"] = current["sender_id"] or ev["sender_id"]
        if rank > current["rank"] or (
            rank == current["rank"] and ev["occurred_at"] < current["reached_at"]
        ):
            current.update(type=ev["type"], rank=rank, reached_at=ev["occurred_at"])
    return [targets[key] for key in sorted(targets)]


@dataclass(frozen=True)
class _Statements:
    add_events: Any  # insert, skip stored, return the keys inserted
    merge_targets: Any  # upsert by the stage rule
    keep_quarantined: Any  # insert, skip kept
    add_messages: Any  # insert, skip known
    record_send: Any  # upsert the send facts of a message


@functools.cache
def _statements_for(dialect: str) -> _Statements:
    insert: Any = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"unsupported database dialect {dialect!r}")
    upsert = insert(TARGET)
    return _Statements(
        add_events=insert(EVENT)
        .on_conflict_do_nothing(index_elements=[EVENT.c.msgid, EVENT.c.event_key])
        .returning(EVENT.c.msgid, EVENT.c.event_key),
        merge_targets=upsert.on_conflict_do_update(
            index_elements=[TARGET.c.msgid, TARGET.c.recipient, TARGET.c.sender],
            set_=_merge_target(upsert),
        ),
        keep_quarantined=insert(QUARANTINE).on_conflict_do_nothing(
            index_elements=[QUARANTINE.c.quarantine_key]
        ),
        add_messages=insert(MESSAGE).on_conflict_do_nothing(index_elements=[MESSAGE.c.msgid]),
        record_send=_record_send_statement(insert),
    )


def _record_send_statement(insert: Any) -> Any:
    statement = insert(MESSAGE)
    new, old = statement.excluded, MESSAGE.c
    sent_facts = ("provider", "channelkey", "sendno", "params", "request", "sent_at",
                  "send_code", "send_message", "send_id", "part")  # fmt: skip
    return statement.on_conflict_do_update(
        index_elements=[MESSAGE.c.msgid],
        set_={
            **{name: new[name] for name in sent_facts},
            # Known since the earlier of: the send, the first callback.
            "created_at": case(
                (new.created_at < old.created_at, new.created_at), else_=old.created_at
            ),
        },  # fmt: skip
    )


def _statements(session: Session) -> _Statements:
    """The bulk statements for the session's database, built once per dialect."""
    return _statements_for(session.get_bind().dialect.name)
