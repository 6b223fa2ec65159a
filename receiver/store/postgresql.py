"""PostgreSQL: a whole batch in one call of a server-side function. The records go to the
server as one JSON parameter; the function claims their messages (as
:func:`receiver.store.claim_messages` does), then one statement extracts the fields,
inserts the new events, folds them per target and merges the targets, leaving the client
nearly nothing to do per record. The function's body is built here, from the same rules
as the rest of the intake (:func:`function_body`), and made by a migration."""

from __future__ import annotations

import textwrap
from typing import Any

from sqlalchemy import (
    BigInteger,
    SmallInteger,
    Text,
    all_,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB, aggregate_order_by

from sender.ums.protocol import TRACKING_PARAM

from ..status import RANK_BY_TYPE
from .statements import (
    ACTIVITY,
    ACTIVITY_SLOTS,
    EVENT,
    MESSAGE,
    MILLISECONDS_FROM,
    NO_SENDER,
    STAGES,
    TARGET,
    error_order,
    merge_target,
)

_TYPE_BY_RANK = {rank: type_ for type_, rank in RANK_BY_TYPE.items()}


def _build_store_statement(
    records: Any, channelkey: Any, received_at: Any, msgids: Any, foreign: Any
) -> Any:
    """WITH new AS (INSERT events ... RETURNING), merged AS (upsert targets folded
    from new) SELECT sender, wechatwk_sender IS NOT NULL, type, count(*) FROM new GROUP
    BY them: ``records`` (a jsonb array) stored as events of ``channelkey``, but for
    those of the messages in ``foreign``; ``msgids`` are all the records' messages (text
    arrays both)."""
    elements = func.jsonb_array_elements(records).table_valued("value")
    record = type_coerce(elements.c.value, JSONB)

    def text(name: str) -> Any:
        return record[name].astext

    sent_time = cast(text("sent_time"), BigInteger)
    error = record["error"]
    extracted = {
        "msgid": text("msgid"),
        # jsonb's text is canonical (sorted keys, no spaces): a retry has the same key.
        "event_key": func.md5(cast(record, Text)),
        "type": cast(text("type"), SmallInteger),
        "channelkey": channelkey,
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
    rows = (
        select(*(extracted[name].label(name) for name in columns if name != "day"))
        .where(extracted["msgid"] != all_(foreign))
        .subquery("rows")
    )
    # Each event is kept under its message's day (the partition key): the messages were
    # claimed earlier in this transaction, so every record finds its row.
    with_day = (
        select(rows, MESSAGE.c.day)
        .join(MESSAGE, MESSAGE.c.msgid == rows.c.msgid)
        # Named by key as well: the few message rows are read by index, never the table.
        .where(MESSAGE.c.msgid == any_(msgids))
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
    # One group per target, no join: its status is that of its best event by rank (the
    # rank names the type), reached when the first event of that rank occurred.
    best_first = aggregate_order_by(new.c.occurred_at, rank.desc(), new.c.occurred_at)
    folded = {
        "msgid": new.c.msgid,
        "recipient": recipient,
        "sender": sender,
        "day": new.c.day,
        "userid": func.max(new.c.userid),
        "sender_id": func.max(new.c.sender_id),
        "wechatwk_sender": func.max(new.c.wechatwk_sender),
        "type": case(_TYPE_BY_RANK, value=func.max(rank)),
        "rank": func.max(rank),
        "reached_at": postgresql.array_agg(best_first)[1],  # type: ignore[no-untyped-call]
        "event_count": func.count(),
        "updated_at": received_at,
        **_stages_of(new),
    }
    target_columns = [c.name for c in TARGET.columns]
    best = (
        select(*(folded[name].label(name) for name in target_columns))
        .where(recipient.is_not(None))
        .group_by(*per_target)
        .order_by(new.c.msgid, recipient, sender)
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
    # Each message with new events counts one more batch, in this session's slot.
    slot = cast(func.mod(func.pg_backend_pid(), ACTIVITY_SLOTS), SmallInteger)
    touched = select(new.c.msgid, slot, literal_column("1")).distinct().order_by(new.c.msgid)
    bump = postgresql.insert(ACTIVITY).from_select(["msgid", "slot", "batches"], touched)
    bumped = (
        bump.on_conflict_do_update(
            index_elements=[ACTIVITY.c.msgid, ACTIVITY.c.slot],
            set_={"batches": ACTIVITY.c.batches + 1},
        )
        .returning(literal_column("1"))
        .cte("bumped")
    )
    # The data-modifying CTEs run to completion whatever the outer query reads. The
    # new events are counted by kind (StoredKind): a handful of rows.
    kind = (new.c.sender, new.c.wechatwk_sender.is_not(None), new.c.type)
    return (
        select(*kind, func.count(), cast(null(), Text))  # the last: no foreign msgid
        .select_from(new)
        .group_by(*kind)
        .add_cte(merged)
        .add_cte(bumped)
    )


def _stages_of(new: Any) -> dict[str, Any]:
    """Each target's stages among the new events (aggregates over a target's group), by
    the status rule: a success (its earliest time) beats a failure (its earliest time
    and error)."""
    columns: dict[str, Any] = {}
    for stage in STAGES:
        ok_at = func.min(new.c.occurred_at).filter(new.c.type == stage.ok)
        if stage.failure is None:
            columns[stage.type] = case((ok_at.is_not(None), stage.ok))
            columns[stage.at] = ok_at
            continue
        failed_at = func.min(new.c.occurred_at).filter(new.c.type == stage.failure)
        only_failed = and_(ok_at.is_(None), failed_at.is_not(None))

        def earliest_failure(column: Any, failure: int = stage.failure) -> Any:
            ordered = postgresql.array_agg(  # type: ignore[no-untyped-call]
                aggregate_order_by(
                    column,
                    new.c.occurred_at,
                    *error_order(new.c.error_code, new.c.error_message),
                )
            )
            return ordered.filter(new.c.type == failure)[1]

        code, message = stage.error_columns
        columns[stage.type] = case(
            (ok_at.is_not(None), stage.ok), (failed_at.is_not(None), stage.failure)
        )
        columns[stage.at] = func.coalesce(ok_at, failed_at)
        columns[code] = case((only_failed, earliest_failure(new.c.error_code)))
        columns[message] = case((only_failed, earliest_failure(new.c.error_message)))
    return columns


STORE_FUNCTION = "umstrack_store_batch"
_SIGNATURE = f"{STORE_FUNCTION}(_records jsonb, _channelkey text, _received_at timestamptz)"
_RESULT = (
    "stored_sender smallint, stored_wechatwk boolean, stored_type smallint, stored_count bigint,"
    " foreign_msgid text"
)

# The messages of the batch are claimed first, in msgid order: the known ones locked FOR
# KEY SHARE (a purge deleting one waits for this batch, so no event is stored for a
# message once gone: see receiver.retention), the new ones inserted for this channel with
# the first params their records echo, and any that another batch inserted meanwhile
# locked and read back. Records of a message another channel owns are not stored: their
# msgids come back, one row each, for the caller to quarantine.
_CLAIM = """
  _msgids := ARRAY(SELECT DISTINCT r ->> 'msgid' FROM jsonb_array_elements(_records) r
                   ORDER BY 1);
  SELECT coalesce(array_agg(k.msgid), '{{}}'),
         coalesce(array_agg(k.msgid) FILTER (WHERE k.channelkey <> _channelkey), '{{}}')
    INTO _known, _foreign
    FROM (SELECT m.msgid, m.channelkey FROM message m WHERE m.msgid = ANY (_msgids)
          ORDER BY m.msgid FOR KEY SHARE) k;
  IF cardinality(_known) < cardinality(_msgids) THEN
    WITH added AS (
      INSERT INTO message (msgid, provider, channelkey, params, send_id, created_at, day)
      SELECT DISTINCT ON (r.value ->> 'msgid') r.value ->> 'msgid', 'ums', _channelkey,
             nullif(r.value -> 'params', 'null'),
             CASE WHEN jsonb_typeof(r.value -> 'params' -> '{tracking}') = 'string'
                  THEN r.value -> 'params' ->> '{tracking}' END,
             _received_at,
             CAST(floor(extract(epoch FROM _received_at) / 86400) AS integer)
        FROM jsonb_array_elements(_records) WITH ORDINALITY r (value, place)
       WHERE (r.value ->> 'msgid') <> ALL (_known)
       ORDER BY r.value ->> 'msgid', nullif(r.value -> 'params', 'null') IS NULL, r.place
      ON CONFLICT (msgid) DO NOTHING
      RETURNING msgid)
    SELECT coalesce(array_agg(msgid), '{{}}') INTO _added FROM added;
    IF cardinality(_known) + cardinality(_added) < cardinality(_msgids) THEN
      SELECT _foreign || coalesce(
               array_agg(o.msgid) FILTER (WHERE o.channelkey <> _channelkey), '{{}}')
        INTO _foreign
        FROM (SELECT m.msgid, m.channelkey FROM message m
               WHERE m.msgid = ANY (_msgids) AND m.msgid <> ALL (_known)
                 AND m.msgid <> ALL (_added)
               ORDER BY m.msgid FOR KEY SHARE) o;
    END IF;
  END IF;
"""


def function_body() -> str:
    """The body of the server-side function that stores a batch: the claim of its
    messages, then :func:`_build_store_statement`'s statement, its result returned with
    the foreign msgids. Compiled from the same rules as the rest of the intake; a change
    of them needs a migration that replaces the function with this body."""
    store = _build_store_statement(
        literal_column("_records", JSONB),
        literal_column("_channelkey", Text),
        literal_column("_received_at", EVENT.c.received_at.type),
        literal_column("_msgids", postgresql.ARRAY(Text)),
        literal_column("_foreign", postgresql.ARRAY(Text)),
    )
    compiled = str(
        store.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})  # type: ignore[no-untyped-call]
    )
    claim = _CLAIM.format(tracking=TRACKING_PARAM)
    lines = [
        "DECLARE",
        "  _msgids text[];",
        "  _known text[];",
        "  _added text[];",
        "  _foreign text[];",
        "BEGIN",
        claim.strip("\n"),
        "  RETURN QUERY",
        *_wrapped(compiled),
        "  ;",
        "  RETURN QUERY SELECT NULL::smallint, NULL::boolean, NULL::smallint, NULL::bigint,",
        "    unnest(_foreign);",
        "END",
    ]
    return "\n" + "\n".join(lines) + "\n"


def _wrapped(sql: str, width: int = 90) -> list[str]:
    """A compiled statement in lines of at most about ``width`` characters, broken at
    spaces outside quotes (the statement quotes no spaces)."""
    out: list[str] = []
    for line in sql.splitlines():
        out += textwrap.wrap(
            line.strip(),
            width,
            initial_indent="    ",
            subsequent_indent="      ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return out


# The plans of the function's statements are made once per connection: left to choose,
# PostgreSQL keeps making custom plans for the parameters' values (which look cheaper on
# paper), about 1 ms of planning at every batch. The generic plans read the message rows
# by key and fold the targets in one pass, whatever the batch holds.
_GENERIC_PLANS = " SET plan_cache_mode = force_generic_plan"


def function_ddl(body: str) -> str:
    """CREATE OR REPLACE FUNCTION with ``body`` (:func:`function_body`, or a migration's
    copy of it)."""
    return (
        f"CREATE OR REPLACE FUNCTION {_SIGNATURE}\n RETURNS TABLE ({_RESULT})\n"
        f" LANGUAGE plpgsql VOLATILE{_GENERIC_PLANS} AS $store${body}$store$"
    )


# A short statement: psycopg prepares it, and PostgreSQL keeps the plans of the
# function's statements for the connection's life.
STORE_CALL = text(
    f"SELECT * FROM {STORE_FUNCTION}(CAST(:records AS jsonb), :channelkey, :received_at)"
).bindparams(
    bindparam("records", type_=Text),
    bindparam("channelkey", type_=Text),
    bindparam("received_at", type_=EVENT.c.received_at.type),
)
