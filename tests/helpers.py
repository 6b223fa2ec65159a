"""Test data factories and small helpers shared by the tests."""

from __future__ import annotations

import base64
import fcntl
import json
import os
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from receiver.models import Event, Quarantine, Target

CHANNEL = "7d431e42dfa6a6d693ac2d04"
SECRET = "5e987ac6d2e04d95a9d8f0d1"
OTHER_CHANNEL = "0a1b2c3d4e5f60718293a4b5"
OTHER_SECRET = "ffeeddccbbaa998877665544"
CHANNELS_ENV = {"UMS_CHANNELS": f"{CHANNEL}:{SECRET},{OTHER_CHANNEL}:{OTHER_SECRET}"}
MSGID = "v:1t:1603707455p:27133n:2"
API_TOKEN = "read-token-0123456789"
SENT_TIME = 1_700_000_000

# sender value -> extra fields a record from that channel carries
CHANNEL_FIELDS: dict[int, dict[str, Any]] = {
    0: {},
    1: {"app_platform": 0, "app_sender": 1},
    2: {},
    3: {},
    4: {},
    5: {},
    6: {},
    7: {},
    8: {},
    9: {"wechatwk_sender": 0},
    10: {"wechatwk_sender": 1},
}


def basic_auth(channelkey: str = CHANNEL, secret: str = SECRET) -> dict[str, str]:
    token = base64.b64encode(f"{channelkey}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def record(
    type_: int,
    *,
    msgid: str = MSGID,
    userid: str = "user1",
    sender: int = 1,
    sent_time: int | None = SENT_TIME,
    **fields: Any,
) -> dict[str, Any]:
    """One callback record as UMS sends it (UMS's 消息回调设置 fields)."""
    rec: dict[str, Any] = {
        "type": type_,
        "channelkey": CHANNEL,
        "msgid": msgid,
        "userid": userid,
        "sender_id": f"sid-{userid}-{sender}",
        "sender": sender,
        **CHANNEL_FIELDS.get(sender, {}),
        "params": {"order_id": "123"},
    }
    if sent_time is not None:
        rec["sent_time"] = sent_time
    if type_ in (1, 3, 5, 8):
        rec["error"] = {"code": 3000 + type_, "message": f"failure of type {type_}"}
    rec.update(fields)
    return rec


def nine_type_batch(size: int = 100, *, msgid: str = MSGID) -> list[dict[str, Any]]:
    """A batch covering all nine types on every channel, one distinct target each."""
    return [
        record(i % 9, msgid=msgid, userid=f"user{i}", sender=i % 11, sent_time=SENT_TIME + i)
        for i in range(size)
    ]


def post(client: Any, payload: Any, headers: dict[str, str] | None = None) -> Any:
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(
        "/callbacks/ums",
        data=body,
        content_type="application/json",
        headers=basic_auth() if headers is None else headers,
    )


def bearer(token: str = API_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_get(client: Any, path: str, **params: Any) -> Any:
    """GET a read API path with the test token; returns the response."""
    return client.get(path, query_string=params, headers=bearer())


def walk(client: Any, path: str, items: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paged list, following next_cursor to the end."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api_get(client, path, **query)
        assert response.status_code == 200, response.json
        seen += response.json[items]
        cursor = response.json["next_cursor"]
        if cursor is None:
            return seen


def events(engine: Engine) -> list[Event]:
    with Session(engine) as session:
        return list(session.scalars(select(Event).order_by(Event.occurred_at, Event.event_key)))


def targets(engine: Engine) -> dict[tuple[str, str, int], Target]:
    with Session(engine) as session:
        return {(t.msgid, t.recipient, t.sender): t for t in session.scalars(select(Target))}


def quarantined(engine: Engine) -> list[Quarantine]:
    with Session(engine) as session:
        return list(session.scalars(select(Quarantine).order_by(Quarantine.id)))


def writer_turn_is_free(lock_path: str) -> bool:
    """Whether no writer holds the SQLite writer turn (its lock file beside the
    database) right now."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also lets go of the lock, if taken
    return True
