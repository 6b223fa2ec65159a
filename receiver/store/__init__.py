"""Bulk writes of the intake hot path: events, target statuses, quarantine.

Two ways to the same rows. PostgreSQL: the whole batch goes to the server as one
JSON parameter of one call of a server-side function (made by a migration from
:func:`receiver.store.postgresql.function_body`), which claims the messages,
extracts the fields, inserts the new events, folds them per target and merges the
targets; on a small machine CPU is what limits intake, and this leaves the client
nearly nothing to do per record and the server no statement to parse or plan again.
SQLite: the messages are claimed (:func:`claim_messages`), the event rows built in
Python as plain values and inserted in one multi-row statement that returns the new
ones; a second statement folds those per target and merges the targets. Both merge
targets with the same rule, :func:`merge_target`.

Every batch takes its row locks in one order, messages, then events, then
targets, each sorted by key, so that concurrent batches that touch the same rows
queue up instead of deadlocking.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from sender.ums.protocol import TRACKING_PARAM

from .portable import store_events_portable
from .postgresql import STORE_CALL
from .statements import (
    ACTIVITY,
    EVENT,
    KEPT,
    MESSAGE,
    NO_SENDER,
    QUARANTINE,
    STAGE_BY_TYPE,
    STAGES,
    TARGET,
    StageColumns,
    StoredKind,
    digest,
    of_message,
    statements,
)

__all__ = [
    "ACTIVITY",
    "EVENT",
    "KEPT",
    "MESSAGE",
    "NO_SENDER",
    "QUARANTINE",
    "STAGES",
    "STAGE_BY_TYPE",
    "TARGET",
    "StageColumns",
    "StoredKind",
    "claim_messages",
    "digest",
    "of_message",
    "record_send",
    "store_events",
    "store_quarantine",
]


def store_events(
    session: Session,
    *,
    records: Sequence[dict[str, Any]],
    records_json: str,
    channelkey: str,
    received_at: datetime,
) -> tuple[Counter[StoredKind], set[str]]:
    """Store checked callback records (``records_json`` is the same list as JSON
    text) as events of ``channelkey``, skipping any already stored, and merge them
    into their targets; their messages are claimed first (:func:`claim_messages`, or
    on PostgreSQL its equal in the server-side function).
    The records of a message another channel owns are not stored. Returns how many
    events were new, by kind, and the msgids of those other channels' messages."""
    if not records:
        return Counter(), set()
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            STORE_CALL,
            {"records": records_json, "channelkey": channelkey, "received_at": received_at},
        )
        stored: Counter[StoredKind] = Counter()
        foreign = set()
        for sender, wechatwk, type_, n, msgid in rows:
            if msgid is None:
                stored[(sender, wechatwk, type_)] = n
            else:
                foreign.add(msgid)
        return stored, foreign
    owners = claim_messages(session, records, channelkey=channelkey, now=received_at)
    foreign = {msgid for msgid, owner in owners.items() if owner not in (None, channelkey)}
    own = [record for record in records if record["msgid"] not in foreign]
    if not own:
        return Counter(), foreign
    return store_events_portable(session, own, channelkey=channelkey, now=received_at), foreign


def claim_messages(
    session: Session, records: Sequence[dict[str, Any]], *, channelkey: str, now: datetime
) -> dict[str, str | None]:
    """Record the messages of these records that were not known yet, for
    ``channelkey`` and with the params their callbacks echo, and return the channel
    each message belongs to: the one that sent it through this service, or the first
    whose callbacks named it. A known message's row is never changed here."""
    params: dict[str, Any] = {}
    for record in records:
        if params.get(record["msgid"]) is None:
            params[record["msgid"]] = record.get("params")
    if not params:
        return {}
    # Most batches are of messages already known (a broadcast's callbacks come in
    # many batches): one indexed read, and an insert only for the new ones.
    owners = _owners(session, sorted(params))
    new = [msgid for msgid in sorted(params) if msgid not in owners]
    if new:
        rows = [
            {
                "msgid": msgid,
                "provider": "ums",
                "channelkey": channelkey,
                "params": params[msgid],
                "send_id": _send_id(params[msgid]),
                "created_at": now,
            }
            for msgid in new
        ]
        inserted = set(session.scalars(statements(session).add_messages, rows))
        owners.update(dict.fromkeys(inserted, channelkey))
        # Read back the others: another batch named them first, meanwhile.
        others = [msgid for msgid in new if msgid not in inserted]
        if others:
            owners.update(_owners(session, others))
    return owners


# FOR KEY SHARE (PostgreSQL): a purge deleting one of these messages waits for this
# batch, so no event is stored for a message once gone (see receiver.retention).
_OWNERS = (
    select(MESSAGE.c.msgid, MESSAGE.c.channelkey)
    .where(MESSAGE.c.msgid.in_(bindparam("msgids", expanding=True)))
    .with_for_update(read=True, key_share=True)
)


def _owners(session: Session, msgids: list[str]) -> dict[str, str | None]:
    return {msgid: owner for msgid, owner in session.execute(_OWNERS, {"msgids": msgids})}


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
    state: str,
    deadline: datetime | None = None,
) -> None:
    """Record one request this service sends or sent (a ``message`` row, in ``state``):
    inserted, or merged into the row that callbacks created when they arrived first."""
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
        "send_state": state,
        "send_deadline": deadline,
        "created_at": sent_at,
    }
    session.execute(statements(session).record_send, [row])


def store_quarantine(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert quarantine rows, skipping any already kept."""
    if rows:
        session.execute(statements(session).keep_quarantined, rows)
