"""A send is recorded before it leaves and completed when UMS answers: a crash or a
database failure in between never loses the fact that it may have gone out, nothing is
resent, and the caller learns the msgid whenever UMS gave one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from receiver import create_app
from receiver.models import Message
from receiver.store import MESSAGE
from tests.fake_ums import FakeUms, Reply
from tests.helpers import CHANNEL, CHANNELS_ENV, SECRET, api_get, bearer, walk
from tests.test_database_down import postgres_outage_switch, sqlite_outage_switch

PUBLIC_URL = "https://umstrack.example.com"
MESSAGE_BODY = {
    "aud_userid": ["user1", "user2"],
    "msg_sms": [{"temp_id": 1, "temp_para": {"code": "1234"}}],
    "option": {"sendno": "order-7"},
    "callback": {"params": {"order_id": "7"}},
}


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as fake:
        yield fake


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _cut_off(engine: Any, msgid: str) -> None:
    """Let the deadline of a pending send pass, as if its longest request time had."""
    with Session(engine) as session:
        session.execute(
            update(MESSAGE)
            .where(MESSAGE.c.msgid == msgid)
            .values(send_deadline=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()


def test_a_send_killed_after_it_left_reads_as_unknown_and_is_never_resent(
    env, fake, tmp_path, client, engine
):
    fake.queue(Reply(delay=60))  # UMS has the request; its answer never comes in time
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(MESSAGE_BODY))
    process_env = {**os.environ, **env, "UMS_API_BASE": fake.url, "PUBLIC_URL": PUBLIC_URL}
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "send", str(path)],
        env=process_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: fake.requests, "the send to reach UMS")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    [sent] = fake.requests
    send_id = sent.json["callback"]["params"]["umstrack_send"]

    [listed] = walk(client, "/api/messages", "messages", send_id=send_id)
    msgid = f"umstrack:{send_id}:0"
    assert listed["msgid"] == msgid
    assert (listed["channelkey"], listed["sendno"], listed["part"]) == (CHANNEL, "order-7", 0)
    assert listed["params"] == {"order_id": "7", "umstrack_send": send_id}
    assert listed["send"] == {"outcome": "pending", "code": None, "message": None}
    with Session(engine) as session:
        row = session.get(Message, msgid)
        assert row is not None and row.request == sent.json  # exactly what went out
        assert row.send_deadline is not None and row.send_deadline > datetime.now(UTC)

    _cut_off(engine, msgid)
    summary = api_get(client, f"/api/messages/{msgid}").json
    assert summary["send"]["outcome"] == "unknown"
    assert summary["send"]["message"].startswith("outcome unknown (the message may have been")
    time.sleep(0.5)
    assert len(fake.requests) == 1  # nothing is ever resent automatically


@pytest.fixture
def outage(backend, database_url, fake):
    """An app whose database can be taken away (SQLite: another writer holds the lock;
    PostgreSQL: the connection goes through a proxy that is cut)."""
    switch = sqlite_outage_switch if backend == "sqlite" else postgres_outage_switch
    with switch(database_url) as (app_url, take_away, bring_back):
        down = threading.Event()

        def go_down() -> None:
            take_away()
            down.set()

        def come_back() -> None:
            if down.is_set():
                bring_back()
                down.clear()

        app = create_app(
            {
                "DATABASE_URL": app_url,
                "SQLITE_BUSY_TIMEOUT_MS": "200",
                "UMS_API_BASE": fake.url,
                "PUBLIC_URL": PUBLIC_URL,
                "API_TOKENS": bearer()["Authorization"].removeprefix("Bearer "),
                **CHANNELS_ENV,
            }
        )
        yield app, go_down, come_back
        come_back()
        app.extensions["umstrack.engine"].dispose()


def test_the_database_failing_after_ums_accepted_still_answers_the_msgid(outage, fake, engine):
    app, go_down, come_back = outage
    client = app.test_client()
    assert client.get("/api/messages", headers=bearer()).status_code == 200  # pool is warm
    fake.queue(Reply(before=go_down))  # UMS accepts; the database goes as it answers
    headers = {**bearer(), "Idempotency-Key": "order-7"}

    response = client.post("/api/messages", json=MESSAGE_BODY, headers=headers)

    assert response.status_code == 201, response.json
    [part] = response.json["parts"]
    [msgid] = response.json["msgids"]
    assert part["msgid"] == msgid and part["code"] == 0
    send_id = response.json["send_id"]
    assert part["recorded"] is False and part["recorded_as"] == f"umstrack:{send_id}:0"

    come_back()
    # A retry with the key never sends again, though the first answer could not be kept.
    retry = client.post("/api/messages", json=MESSAGE_BODY, headers=headers)
    assert retry.status_code == 409
    assert (retry.json["error"], retry.json["send_id"]) == ("idempotency_key_in_flight", send_id)
    assert len(fake.requests) == 1
    # The request stays recorded as it left, and reads as unknown once its time is up.
    summary = api_get(client, f"/api/messages/{part['recorded_as']}").json
    assert summary["send"]["outcome"] == "pending" and summary["sendno"] == "order-7"
    _cut_off(engine, part["recorded_as"])
    summary = api_get(client, f"/api/messages/{part['recorded_as']}").json
    assert summary["send"]["outcome"] == "unknown"


def test_the_database_down_before_sending_sends_nothing(outage, fake):
    app, go_down, _come_back = outage
    client = app.test_client()
    go_down()

    response = client.post("/api/messages", json=MESSAGE_BODY, headers=bearer())

    assert response.status_code == 503
    assert response.json["error"] == "database_unavailable"
    assert fake.requests == []  # nothing could be recorded, so nothing left


def test_every_part_is_recorded_before_the_first_leaves(env, fake, engine):
    seen: list[list[tuple[str, str | None]]] = []

    def look() -> None:
        with Session(engine) as session:
            rows = session.query(Message.msgid, Message.send_state).order_by(Message.part)
            seen.append([(msgid, state) for msgid, state in rows])

    fake.queue(Reply(before=look))
    app = create_app({**env, "UMS_API_BASE": fake.url})
    try:
        body = {**MESSAGE_BODY, "aud_userid": [f"u{i}" for i in range(2500)]}
        response = app.test_client().post("/api/messages", json=body, headers=bearer())
    finally:
        app.extensions["umstrack.engine"].dispose()

    assert response.status_code == 201
    send_id = response.json["send_id"]
    # When UMS got the first request, all three were on record, none answered yet.
    assert seen == [[(f"umstrack:{send_id}:{n}", "pending") for n in range(3)]]
    with Session(engine) as session:
        rows = {m.msgid: m.send_state for m in session.query(Message)}
    assert rows == dict.fromkeys(response.json["msgids"], "sent")  # the rows of ours moved
