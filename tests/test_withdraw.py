"""Withdrawing through this service: recorded before it leaves, over real HTTP to a fake
UMS (or the emulator), on every database backend."""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from receiver import create_app
from receiver.db import write_transaction
from receiver.local import free_port, running_server
from receiver.models import Message
from receiver.sending.withdraw import AlreadyWithdrawnError, Withdrawer, WithdrawOutcome
from receiver.store import MESSAGE as MESSAGE_TABLE
from receiver.store import record_send
from sender.emulator import Emulator
from sender.http import RetryPolicy
from sender.ums.protocol import ALREADY_WITHDRAWN, RETRACT_PATH
from tests.cli import invoke
from tests.emulator_helpers import APP, HTTP_TIMEOUT, SMS, config
from tests.fake_ums import FakeUms, Recorded, Reply
from tests.helpers import (
    CHANNEL,
    CHANNELS_ENV,
    OTHER_CHANNEL,
    OTHER_SECRET,
    SECRET,
    api_get,
    basic_auth,
    bearer,
    post,
    record,
)
from tests.test_database_down import postgres_outage_switch
from tests.test_emulator_loop import check_receiver_has_exactly, read_message, receiver_env
from tests.test_openapi import _check, _closed, _served

MESSAGE = {"aud_userid": ["user1", "user2"], "msg_sms": [{"temp_id": 1, "temp_para": {"c": "1"}}]}
HEARD_OF = "v:1t:1700000000p:1n:7"  # a msgid known only from its callbacks


class HeldUms(FakeUms):
    """A fake UMS that holds each withdraw's answer until ``release`` is set, and calls
    ``on_withdraw`` (if any) when one arrives."""

    def __init__(self, channels: dict[str, str]) -> None:
        super().__init__(channels)
        self.release = threading.Event()
        self.release.set()
        self.on_withdraw: Callable[[], None] | None = None

    def reply_to(self, req: Recorded) -> Reply:
        reply = super().reply_to(req)
        if req.path.startswith(RETRACT_PATH):
            if self.on_withdraw is not None:
                self.on_withdraw()
            self.release.wait(30)
        return reply

    def withdraws(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(RETRACT_PATH)]


@pytest.fixture
def fake() -> Iterator[HeldUms]:
    with HeldUms({CHANNEL: SECRET, OTHER_CHANNEL: OTHER_SECRET}) as fake:
        yield fake


@pytest.fixture
def send_env(env: dict[str, str], fake: HeldUms) -> dict[str, str]:
    return {**env, "UMS_API_BASE": fake.url}


@pytest.fixture
def app(send_env: dict[str, str]) -> Iterator[Flask]:
    app = create_app(send_env)
    yield app
    app.extensions["umstrack.engine"].dispose()


def _sent(client: Any) -> str:
    """The msgid of a message sent through this service."""
    response = client.post("/api/messages", json=MESSAGE, headers=bearer())
    assert response.status_code == 201, response.json
    [msgid] = response.json["msgids"]
    return str(msgid)


def _heard_of(client: Any) -> None:
    """Make HEARD_OF known through a callback of the other channel."""
    batch = [record(4, msgid=HEARD_OF, channelkey=OTHER_CHANNEL)]
    response = post(client, batch, basic_auth(OTHER_CHANNEL, OTHER_SECRET))
    assert response.status_code == 200 and response.json["stored"] == 1, response.json


def _withdraw(client: Any, msgid: str, **headers: str) -> Any:
    return client.post(f"/api/messages/{msgid}/withdraw", headers=headers or bearer())


def _summary(client: Any, msgid: str) -> dict[str, Any]:
    response = api_get(client, f"/api/messages/{msgid}")
    assert response.status_code == 200, response.json
    return dict(response.json)


def _use(app: Flask, api_base: str | None = None, **options: Any) -> None:
    """Give the app a withdrawer with another UMS base URL or client options (timeouts,
    retries)."""
    settings = app.extensions["umstrack.settings"]
    app.extensions["umstrack.withdrawer"] = Withdrawer(
        engine=app.extensions["umstrack.engine"],
        channels=settings.channels,
        api_base=api_base or settings.ums_api_base,
        **options,
    )


def test_withdraw_goes_to_ums_and_is_recorded(client, fake, send_env):
    msgid = _sent(client)
    before = datetime.now(UTC)

    response = _withdraw(client, msgid)

    assert response.status_code == 200, response.json
    answer = response.json
    assert {k: answer[k] for k in ("msgid", "state", "code", "message", "recorded")} == {
        "msgid": msgid,
        "state": "accepted",
        "code": 0,
        "message": "success",
        "recorded": True,
    }
    [sent] = fake.withdraws()
    assert sent.requestline == f"POST {RETRACT_PATH}{msgid} HTTP/1.1"  # ":" stays literal
    assert sent.headers["Authorization"] == basic_auth(CHANNEL, SECRET)["Authorization"]
    assert sent.body == b""
    withdraw = _summary(client, msgid)["withdraw"]
    assert withdraw == {k: answer[k] for k in withdraw}
    assert before <= datetime.fromisoformat(withdraw["requested_at"])
    assert withdraw["requested_at"] <= withdraw["answered_at"]
    # umstrack status shows it too.
    status = invoke("status", msgid, env=send_env)
    assert status.exit_code == 0, status.stderr
    assert "withdraw:    accepted (code 0) success, asked " in status.stdout


def test_a_message_heard_of_through_callbacks_is_withdrawn_through_its_channel(client, fake):
    _heard_of(client)
    response = _withdraw(client, HEARD_OF)
    assert response.status_code == 200, response.json
    [sent] = fake.withdraws()
    assert sent.path == RETRACT_PATH + HEARD_OF
    assert sent.headers["Authorization"] == basic_auth(OTHER_CHANNEL, OTHER_SECRET)["Authorization"]


def test_a_second_withdraw_is_409_and_sends_nothing(client, fake):
    msgid = _sent(client)
    assert _withdraw(client, msgid).status_code == 200

    response = _withdraw(client, msgid)

    assert response.status_code == 409
    assert response.json["error"] == "already_withdrawn"
    assert response.json["code"] == ALREADY_WITHDRAWN
    assert response.json["withdraw"]["state"] == "accepted"
    assert "ums" not in response.json  # answered from the record, not by UMS
    assert len(fake.withdraws()) == 1


def test_a_ums_refusal_is_502_recorded_and_may_be_tried_again(client, fake):
    msgid = _sent(client)
    fake.error(4004, "only messages of the last 24 h can be withdrawn")

    response = _withdraw(client, msgid)

    assert response.status_code == 502
    assert response.json["error"] == "ums_error"
    assert response.json["ums"] == {
        "code": 4004,
        "message": "only messages of the last 24 h can be withdrawn",
        "http_status": 400,
    }
    withdraw = _summary(client, msgid)["withdraw"]
    assert (withdraw["state"], withdraw["code"]) == ("refused", 4004)
    assert withdraw["message"] == "only messages of the last 24 h can be withdrawn"
    # A refusal withdrew nothing: asking again reaches UMS again.
    assert _withdraw(client, msgid).status_code == 200
    assert len(fake.withdraws()) == 2
    assert _summary(client, msgid)["withdraw"]["state"] == "accepted"


def test_ums_answering_already_withdrawn_is_409_and_final(client, fake):
    msgid = _sent(client)
    fake.error(ALREADY_WITHDRAWN, "message already withdrawn")  # e.g. in UMS's console

    response = _withdraw(client, msgid)

    assert response.status_code == 409
    assert response.json["error"] == "already_withdrawn"
    assert response.json["code"] == ALREADY_WITHDRAWN
    assert response.json["ums"]["code"] == ALREADY_WITHDRAWN
    withdraw = _summary(client, msgid)["withdraw"]
    assert (withdraw["state"], withdraw["code"]) == ("refused", ALREADY_WITHDRAWN)
    again = _withdraw(client, msgid)
    assert again.status_code == 409 and "ums" not in again.json
    assert len(fake.withdraws()) == 1


def test_two_withdraws_at_once_send_one_request(app, client, fake):
    msgid = _sent(client)
    withdrawer: Withdrawer = app.extensions["umstrack.withdrawer"]
    fake.release.clear()  # the withdraw that reaches UMS waits there for the other
    start = threading.Barrier(2)
    results: queue.Queue[WithdrawOutcome | Exception] = queue.Queue()

    def withdraw() -> None:
        start.wait()
        try:
            results.put(withdrawer.withdraw(msgid))
        except Exception as exc:  # handed to the test thread
            results.put(exc)

    threads = [threading.Thread(target=withdraw) for _ in range(2)]
    for thread in threads:
        thread.start()
    first = results.get(timeout=30)  # the one that did not claim it
    fake.release.set()
    second = results.get(timeout=30)
    for thread in threads:
        thread.join()

    assert isinstance(first, AlreadyWithdrawnError), first
    assert first.error == "withdraw_in_flight" and first.code == ALREADY_WITHDRAWN
    assert isinstance(second, WithdrawOutcome) and second.state == "accepted"
    assert len(fake.withdraws()) == 1


def test_no_answer_is_504_recorded_unknown_and_never_sent_again(app, client, fake):
    msgid = _sent(client)
    _use(app, timeout=(2.0, 0.3))
    fake.queue(Reply(delay=10.0))  # answers long after the read timeout

    response = _withdraw(client, msgid)

    assert response.status_code == 504
    assert response.json["error"] == "unknown_outcome"
    withdraw = _summary(client, msgid)["withdraw"]
    assert withdraw["state"] == "unknown" and withdraw["code"] is None
    assert withdraw["message"].startswith("outcome unknown (it may have been withdrawn)")
    again = _withdraw(client, msgid)
    assert again.status_code == 409
    assert again.json["error"] == "withdraw_outcome_unknown"
    assert again.json["code"] == ALREADY_WITHDRAWN
    assert len(fake.withdraws()) == 1


def test_a_withdraw_that_never_left_releases_its_claim(app, client, fake):
    msgid = _sent(client)
    _use(app, f"http://127.0.0.1:{free_port()}", retry=RetryPolicy(base_delay=0.01))

    response = _withdraw(client, msgid)  # nothing listens there: connection refused

    assert response.status_code == 502
    assert response.json["error"] == "ums_unreachable"
    assert response.json["withdraw"]["state"] == "not_sent"
    assert _summary(client, msgid)["withdraw"]["state"] == "not_sent"
    _use(app)  # UMS is back
    assert _withdraw(client, msgid).status_code == 200
    assert len(fake.withdraws()) == 1


def test_an_unknown_msgid_is_404(client, fake):
    response = _withdraw(client, "v:1t:1p:1n:404")
    assert response.status_code == 404 and response.json["error"] == "not_found"
    assert fake.requests == []


def test_a_msgid_ums_never_accepted_is_400(client, fake, engine):
    fake.error(1015005, "渠道已关闭")
    failed = client.post("/api/messages", json=MESSAGE, headers=bearer())
    assert failed.status_code == 502
    ours = failed.json["sent"]["parts"][0]["recorded_as"]  # umstrack:<send_id>:0
    with write_transaction(engine) as session:
        record_send(  # as RongCloudSender records a request RongCloud accepted
            session,
            msgid="rc:abc:0",
            provider="rongcloud",
            channelkey=CHANNEL,
            sendno=None,
            params=None,
            request={},
            code=200,
            message="ok",
            send_id="abc",
            part=0,
            sent_at=datetime.now(UTC),
            state="sent",
        )
    for msgid in (ours, "rc:abc:0"):
        response = _withdraw(client, msgid)
        assert response.status_code == 400, msgid
        assert response.json["error"] == "not_withdrawable"
        assert _summary(client, msgid)["withdraw"] is None
    assert fake.withdraws() == []


def test_a_channel_not_configured_is_503(client, fake, send_env):
    _heard_of(client)
    for channels in (f"{CHANNEL}:{SECRET}", ""):
        other = create_app({**send_env, "UMS_CHANNELS": channels})
        try:
            response = _withdraw(other.test_client(), HEARD_OF)
        finally:
            other.extensions["umstrack.engine"].dispose()
        assert response.status_code == 503 and response.json["error"] == "not_configured"
    assert fake.withdraws() == []


def test_withdrawing_needs_a_token(client, fake):
    msgid = _sent(client)
    response = client.post(f"/api/messages/{msgid}/withdraw")
    assert response.status_code == 401
    assert _withdraw(client, msgid, Authorization="Bearer wrong").status_code == 401
    assert fake.withdraws() == []


def test_withdraw_answers_match_the_openapi_document(client, fake):
    doc = _closed(_served(client))
    msgid = _sent(client)
    fake.error(1015005, "渠道已关闭")
    answers = [_withdraw(client, "unknown")]
    answers.append(_withdraw(client, msgid))
    answers.append(_withdraw(client, msgid))
    answers.append(_withdraw(client, msgid))
    answers.append(_withdraw(client, msgid, Authorization="Bearer wrong"))
    assert [a.status_code for a in answers] == [404, 502, 200, 409, 401]
    for answer in answers:
        _check(doc, answer, "/api/messages/{msgid}/withdraw", "post")


# --- the database fails once UMS has answered --------------------------------------------


@contextmanager
def _sqlite_outage(url: str) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """On SQLite "down" is another connection holding the write lock; the fake UMS's
    thread takes it, so the connection may be used from any thread."""
    holder = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    yield url, lambda: holder.execute("BEGIN EXCLUSIVE"), lambda: holder.execute("ROLLBACK")
    holder.close()


@pytest.fixture
def outage(
    backend, database_url, fake
) -> Iterator[tuple[Any, Callable[[], None], Callable[[], None]]]:
    """A client of an app whose database the test can take away and bring back."""
    switch = _sqlite_outage if backend == "sqlite" else postgres_outage_switch
    with switch(database_url) as (app_url, go_down, come_back):
        env = {
            "DATABASE_URL": app_url,
            "SQLITE_BUSY_TIMEOUT_MS": "200",
            **CHANNELS_ENV,
            "API_TOKENS": bearer()["Authorization"].removeprefix("Bearer "),
            "UMS_API_BASE": fake.url,
        }
        app = create_app(env)
        yield app.test_client(), go_down, come_back
        app.extensions["umstrack.engine"].dispose()


def test_the_answer_reaches_the_caller_when_the_database_fails_after_ums_answered(
    outage, fake, caplog
):
    client, go_down, come_back = outage
    msgid = _sent(client)
    fake.on_withdraw = go_down  # UMS gets it, then the database goes

    with caplog.at_level(logging.ERROR, logger="receiver.sending.withdraw"):
        response = _withdraw(client, msgid)

    assert response.status_code == 200, response.json
    assert response.json["state"] == "accepted" and response.json["code"] == 0
    assert response.json["recorded"] is False
    assert "the database failed" in caplog.text
    come_back()
    fake.on_withdraw = None
    withdraw = _summary(client, msgid)["withdraw"]
    assert withdraw["state"] == "pending"  # as recorded before it left
    again = _withdraw(client, msgid)
    assert again.status_code == 409 and again.json["error"] == "withdraw_in_flight"
    assert len(fake.withdraws()) == 1


def test_nothing_is_sent_while_the_database_is_down(outage, fake):
    client, go_down, come_back = outage
    msgid = _sent(client)
    go_down()
    response = _withdraw(client, msgid)
    assert response.status_code == 503 and response.json["error"] == "database_unavailable"
    assert fake.withdraws() == []
    come_back()
    assert _withdraw(client, msgid).status_code == 200


def test_a_withdraw_pending_past_its_deadline_reads_as_unknown(client, fake, engine):
    msgid = _sent(client)
    # As a crash between sending and recording the answer leaves it, a day ago.
    asked = datetime.now(UTC) - timedelta(days=1)
    with write_transaction(engine) as session:
        session.execute(
            update(MESSAGE_TABLE)
            .where(MESSAGE_TABLE.c.msgid == msgid)
            .values(withdraw_state="pending", withdraw_requested_at=asked)
        )

    response = _withdraw(client, msgid)

    assert response.status_code == 409
    assert response.json["error"] == "withdraw_outcome_unknown"
    assert response.json["withdraw"]["state"] == "unknown"
    withdraw = _summary(client, msgid)["withdraw"]
    assert withdraw["state"] == "unknown"
    assert withdraw["message"].startswith("outcome unknown: no answer was recorded by")
    assert fake.withdraws() == []


def test_a_withdraw_cut_off_reads_as_unknown_in_the_summary_without_another_try(
    client, fake, engine
):
    msgid = _sent(client)
    asked = datetime.now(UTC) - timedelta(minutes=10)
    with write_transaction(engine) as session:
        session.execute(
            update(MESSAGE_TABLE)
            .where(MESSAGE_TABLE.c.msgid == msgid)
            .values(
                withdraw_state="pending",
                withdraw_requested_at=asked,
                withdraw_deadline=asked + timedelta(minutes=5),
            )
        )

    withdraw = _summary(client, msgid)["withdraw"]

    assert withdraw["state"] == "unknown"
    assert withdraw["message"].startswith("outcome unknown: no answer was recorded by")
    assert fake.withdraws() == []


def test_a_withdraw_is_recorded_with_its_deadline_before_it_leaves(client, fake, engine):
    msgid = _sent(client)
    seen: list[tuple[str | None, Any]] = []

    def look() -> None:
        with Session(engine) as session:
            row = session.get(Message, msgid)
            assert row is not None
            seen.append((row.withdraw_state, row.withdraw_deadline))

    fake.queue(Reply(before=look))
    assert _withdraw(client, msgid).status_code == 200

    [(state, deadline)] = seen
    assert state == "pending" and deadline > datetime.now(UTC)
    assert _summary(client, msgid)["withdraw"]["state"] == "accepted"


# --- the command line --------------------------------------------------------------------


def test_cli_withdraws_and_prints_the_answer(client, fake, send_env):
    msgid = _sent(client)
    result = invoke("withdraw", msgid, env=send_env)
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert (printed["msgid"], printed["state"], printed["code"]) == (msgid, "accepted", 0)
    assert _summary(client, msgid)["withdraw"]["state"] == "accepted"

    again = invoke("withdraw", msgid, env=send_env)
    assert again.exit_code == 1
    assert json.loads(again.stdout)["code"] == ALREADY_WITHDRAWN
    assert "already withdrawn" in again.stderr
    assert len(fake.withdraws()) == 1


def test_cli_reports_a_ums_refusal(client, fake, send_env):
    msgid = _sent(client)
    fake.error(1015005, "渠道已关闭")
    result = invoke("withdraw", msgid, env=send_env)
    assert result.exit_code == 1
    printed = json.loads(result.stdout)
    assert printed["error"] == "ums_error" and printed["ums"]["code"] == 1015005
    assert printed["withdraw"]["state"] == "refused"
    assert "渠道已关闭" in result.stderr


@pytest.mark.parametrize(
    ("msgid", "channels", "reason"),
    [
        ("v:1t:1p:1n:404", None, "Nothing is known of msgid"),
        (HEARD_OF, f"{CHANNEL}:{SECRET}", "not configured"),
        (HEARD_OF, "", "no UMS channel is configured"),
    ],
)
def test_cli_refuses_what_it_cannot_withdraw(client, fake, send_env, msgid, channels, reason):
    _heard_of(client)
    env = send_env if channels is None else {**send_env, "UMS_CHANNELS": channels}
    result = invoke("withdraw", msgid, env=env)
    assert result.exit_code == 2
    assert reason in result.stderr and result.stdout == ""
    assert fake.withdraws() == []


def test_cli_help_names_what_it_reads():
    result = invoke("withdraw", "--help", env={})
    assert result.exit_code == 0
    help_text = " ".join(result.stdout.split())
    for name in ("UMS_CHANNELS", "UMS_API_BASE", "DATABASE_URL"):
        assert name in help_text


# --- the whole loop, emulated ------------------------------------------------------------


def test_a_withdraw_through_the_service_comes_back_as_callbacks(database_url, tmp_path: Path):
    settings = config(
        invalid_share=0, submit_fail_share=0.1, click_share=0.3, withdraw_fail_share=0.3
    )
    with (
        Emulator(settings) as em,
        open(tmp_path / "serve.log", "w") as log,
        running_server({**receiver_env(database_url), "UMS_API_BASE": em.url}, output=log) as base,
        requests.Session() as http,
    ):
        message = {
            "aud_userid": [f"user{i}" for i in range(12)],
            "msg_app": APP,
            "msg_sms": SMS,
            "callback": {"url": f"{base}/callbacks/ums"},
        }
        sent = http.post(f"{base}/api/messages", json=message, headers=bearer(), timeout=30)
        assert sent.status_code == 201, sent.text
        [msgid] = sent.json()["msgids"]
        assert em.wait_idle(20), em.pending()

        url = f"{base}/api/messages/{msgid}/withdraw"
        withdrawn = http.post(url, headers=bearer(), timeout=HTTP_TIMEOUT)
        assert withdrawn.status_code == 200, withdrawn.text
        assert withdrawn.json()["state"] == "accepted"
        generated = em.state()["messages"][msgid]["generated"]
        again = http.post(url, headers=bearer(), timeout=HTTP_TIMEOUT)
        assert again.status_code == 409 and again.json()["code"] == ALREADY_WITHDRAWN
        assert "ums" not in again.json()  # the service answered: nothing went to UMS
        assert em.wait_idle(20), em.pending()
        assert em.state()["messages"][msgid]["withdrawn"] is True
        assert em.state()["messages"][msgid]["generated"] == generated
        check_receiver_has_exactly(em, base, [msgid])
        summary, targets = read_message(http, base, msgid)

    assert summary["withdraw"]["state"] == "accepted" and summary["withdraw"]["code"] == 0
    assert summary["counts"]["withdrawn"] > 0 and summary["counts"]["withdraw_failed"] > 0
    records = em.records(msgid)
    submitted = {(r["userid"], r["sender"]) for r in records if r["type"] == 2}
    statuses = {(t["recipient"], t["sender"]): t["status"] for t in targets}
    assert {statuses[key] for key in submitted} == {"withdrawn", "withdraw_failed"}
