"""PostgreSQL: a whole batch in one statement. The records go to the server as one JSON
parameter; the statement extracts the fields, inserts the new events, folds them per
target and merges the targets, leaving the client nearly nothing to do per record."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    SmallInteger,
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
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

from ..status import RANK_BY_TYPE
from .statements import EVENT, MESSAGE, MILLISECONDS_FROM, NO_SENDER, STAGES, TARGET, merge_target


def _build_postgresql_statement() -> Any:
    """WITH new AS (INSERT events ... RETURNING), merged AS (upsert targets folded
    from new) SELECT sender, wechatwk_sender IS NOT NULL, type, count(*) FROM new GROUP
    BY them; parameters :records, :channelkey, :received_at."""
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
    rows = select(*(extracted[name].label(name) for name in columns if name != "day")).subquery(
        "rows"
    )
    # Each event is kept under its message's day (the partition key): the messages were
    # claimed earlier in this transaction, so every record finds its row.
    with_day = (
        select(rows, MESSAGE.c.day)
        .join(MESSAGE, MESSAGE.c.msgid == rows.c.msgid)
        .order_by(rows.c.msgid, rows.c.event_key)
    )
    new = (
        postgresql.insert(EVENT)
        .from_select(columns, with_day)
        .on_conflict_do_nothing(index_elements=[EVENT.c.msgid, EVENT.c.event_key, EVENT.c.day])
        .returning(*EVENT.columns)
        .cte("new")
    )
    recipient = func.coalesce(new.c.userid, new.c.sender_id)
    sender = func.coalesce(new.c.sender, NO_SENDER)
    rank = case(RANK_BY_TYPE, value=new.c.type)
    # day follows from msgid: grouping by it as well changes no group.
    per_target = [new.c.msgid, recipient, sender, new.c.day]
    ranked = (
        select(
            new.c.msgid,
            recipient.label("recipient"),
            sender.label("sender"),
            new.c.day,
            func.max(new.c.userid).over(partition_by=per_target).label("userid"),
            func.max(new.c.sender_id).over(partition_by=per_target).label("sender_id"),
            func.max(new.c.wechatwk_sender).over(partition_by=per_target).label("wechatwk_sender"),
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
    stages = _stages_of(new, per_target)
    folded = {
        **ranked.c,
        **{c.name: c for c in stages.c if c.name not in ("msgid", "recipient", "sender", "day")},
    }
    target_columns = [c.name for c in TARGET.columns]
    best = (
        select(*(folded[name] for name in target_columns))
        .select_from(
            ranked.join(
                stages,
                and_(
                    stages.c.msgid == ranked.c.msgid,
                    stages.c.recipient == ranked.c.recipient,
                    stages.c.sender == ranked.c.sender,
                    stages.c.day == ranked.c.day,
                ),
            )
        )
        .where(ranked.c.place == 1)
        .order_by(ranked.c.msgid, ranked.c.recipient, ranked.c.sender)
    )
    upsert = postgresql.insert(TARGET).from_select(target_columns, best)
    merged = (
        upsert.on_conflict_do_update(
            index_elements=[TARGET.c.msgid, TARGET.c.recipient, TARGET.c.sender, TARGET.c.day],
            set_=merge_target(upsert),
        )
        .returning(literal_column("1"))
        .cte("merged")
    )
    # Both data-modifying CTEs run to completion whatever the outer query reads. The
    # new events are counted by kind (StoredKind): a handful of rows.
    kind = (new.c.sender, new.c.wechatwk_sender.is_not(None), new.c.type)
    return select(*kind, func.count()).select_from(new).group_by(*kind).add_cte(merged)


def _stages_of(new: Any, per_target: list[Any]) -> Any:
    """Each target's stages among the new events, by the status rule: a success (its
    earliest time) beats a failure (its earliest time and error)."""
    columns = []
    for stage in STAGES:
        ok_at = func.min(new.c.occurred_at).filter(new.c.type == stage.ok)
        if stage.failure is None:
            columns += [
                case((ok_at.is_not(None), stage.ok)).label(stage.type),
                ok_at.label(stage.at),
            ]
            continue
        failed_at = func.min(new.c.occurred_at).filter(new.c.type == stage.failure)
        only_failed = and_(ok_at.is_(None), failed_at.is_not(None))

        def earliest_failure(column: Any, failure: int = stage.failure) -> Any:
            ordered = postgresql.array_agg(  # type: ignore[no-untyped-call]
                aggregate_order_by(column, new.c.occurred_at)
            )
            return ordered.filter(new.c.type == failure)[1]

        code, message = stage.error_columns
        columns += [
            case((ok_at.is_not(None), stage.ok), (failed_at.is_not(None), stage.failure)).label(
                stage.type
            ),
            func.coalesce(ok_at, failed_at).label(stage.at),
            case((only_failed, earliest_failure(new.c.error_code))).label(code),
            case((only_failed, earliest_failure(new.c.error_message))).label(message),
        ]
    msgid, recipient, sender, day = per_target
    return (
        select(
            msgid.label("msgid"),
            recipient.label("recipient"),
            sender.label("sender"),
            day.label("day"),
            *columns,
        )
        .where(recipient.is_not(None))
        .group_by(*per_target)
        .subquery("stages")
    )


STORE_POSTGRESQL = _build_postgresql_statement()
