"""RongCloud template private messages: signed, validated, split, rate-limited, failed over,
recorded; over real HTTP to a fake RongCloud on loopback that checks signatures."""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session

from receiver.models import Message
from receiver.sending.outcome import SendFailedError
from receiver.sending.rongcloud import RongCloudSender, add_arguments, run
from sender.errors import (
    InvalidMessageError,
    NotSentError,
    ProviderRefusedError,
    UnknownOutcomeError,
)
from sender.http import RetryPolicy
from sender.rongcloud import (
    BUILTIN_OBJECT_NAMES,
    RateLimiter,
    RongCloudClient,
    limiter_for,
    preview_template,
    signature,
    validate_template,
)
from tests.fake_rongcloud import FakeRongCloud, Reply, rongcloud_error
from tests.helpers import api_get, walk

APP_KEY = "rc-app-key-8f2b1d"
APP_SECRET = "rc-secret-5e98a7c6"
T0 = 1_700_000_000.0

# The seed page's example: one content with {c}{d}, a value map and push text per recipient.
SEED: dict[str, Any] = {
    "fromUserId": "system",
    "toUserId": ["21", "22", "23"],
    "objectName": "RC:TxtMsg",
    "content": '{"content":"{c}{d}","extra":"bb"}',
    "values": [
        {"{c}": "Tom", "{d}": ":2"},
        {"{c}": "Jerry", "{d}": ":5"},
        {"{c}": "Rose", "{d}": ":10"},
    ],
    "pushContent": ["hello {c}", "hello {c}", "hello {c}"],
}


def seed(**changes: Any) -> dict[str, Any]:
    """The seed message with some fields replaced (None removes one)."""
    message = copy.deepcopy(SEED)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    return message


def many(n: int) -> dict[str, Any]:
    """A message to n recipients u00000..., each with its own name."""
    users = [f"u{i:05d}" for i in range(n)]
    return seed(
        toUserId=users,
        values=[{"{c}": f"name{i}", "{d}": f":{i}"} for i in range(n)],
        pushContent=["hello {c}"] * n,
    )


class FakeClock:
    """Simulated time: calling it reads the time, sleep() moves it on."""

    def __init__(self, start: float = T0) -> None:
        self.start = self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> Iterator[FakeRongCloud]:
    with FakeRongCloud({APP_KEY: APP_SECRET}) as fake:
        yield fake


@pytest.fixture
def backup() -> Iterator[FakeRongCloud]:
    with FakeRongCloud({APP_KEY: APP_SECRET}) as backup:
        yield backup


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def options(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    """Client options for tests: simulated time everywhere, and a limiter of its own
    (the process-wide one would carry capacity over from test to test)."""
    return {
        "timeout": (2.0, 10.0),
        "sleep": clock.sleep,
        "limiter": RateLimiter(clock=clock, sleep=clock.sleep),
        "wall_clock": clock,
        **extra,
    }


def client_for(base: str, clock: FakeClock, **extra: Any) -> RongCloudClient:
    extra.setdefault("app_secret", APP_SECRET)
    secret = extra.pop("app_secret")
    return RongCloudClient(APP_KEY, secret, base, **options(clock, **extra))


@pytest.fixture
def sender(engine, fake, clock) -> RongCloudSender:
    return RongCloudSender(
        engine=engine, app_key=APP_KEY, app_secret=APP_SECRET, api_base=fake.url, **options(clock)
    )


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- signing and the request ------------------------------------------------------


def test_signature_is_sha1_hex_of_secret_nonce_timestamp() -> None:
    independent = hashlib.sha1((APP_SECRET + "nonce0123456789" + "1700000000").encode()).hexdigest()
    assert signature(APP_SECRET, "nonce0123456789", "1700000000") == independent
    assert independent == "3e77950b5963fa5af98f9eab9f059a9706ee1aa5"  # sha1sum, by hand


def test_request_is_signed_json_to_publish_template(fake, clock) -> None:
    with client_for(fake.url, clock, nonce=lambda: "nonce0123456789") as client:
        clock.now = 1_700_000_000.75  # sent as whole seconds, as RongCloud's SDKs do
        result = client.publish_template(SEED)

    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", "/message/private/publish_template.json")
    assert sent.headers["App-Key"] == APP_KEY
    assert sent.headers["Nonce"] == "nonce0123456789"
    assert sent.headers["Timestamp"] == "1700000000"
    assert sent.headers["Signature"] == "3e77950b5963fa5af98f9eab9f059a9706ee1aa5"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Request-Id"] == result.request_id
    assert "Authorization" not in sent.headers
    assert sent.signed
    assert sent.json == SEED  # the body, exactly: content stays a string with placeholders
    assert isinstance(sent.json["content"], str)
    assert result.code == 200 and result.base_url == fake.url
    assert [u["userId"] for u in result.message_uids] == ["21", "22", "23"]


def test_every_attempt_has_its_own_nonce(fake, clock) -> None:
    fake.error(1008, "rate limited", 429)
    with client_for(fake.url, clock) as client:
        client.publish_template(SEED)
    nonces = [r.headers["Nonce"] for r in fake.requests]
    assert len(nonces) == 2 and len(set(nonces)) == 2
    assert all(len(n) <= 18 for n in nonces)  # the 2021 docs' limit


# --- validation: one failing case per rule, nothing sent ---------------------------

BIG_CONTENT = json.dumps({"content": "x" * (128 * 1024)})

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("no recipients", seed(toUserId=[]), "toUserId", "non-empty"),
    ("recipient not a string", seed(toUserId=["21", 22, "23"]), "toUserId[1]", "string"),
    ("recipient twice", seed(toUserId=["21", "22", "21"]), "toUserId[2]", "already"),
    ("values short", seed(values=SEED["values"][:2]), "values", "2 entries for 3"),
    ("values not maps", seed(values=["Tom", "Jerry", "Rose"]), "values[0]", "object"),
    ("values key without braces", seed(values=[{"c": "Tom", "d": ":2"}] * 3), "values[0]",
     "'{c}'"),
    ("value not a string", seed(values=[{"{c}": "Tom", "{d}": 2}] * 3), "values[0]['{d}']",
     "string"),
    ("pushContent short", seed(pushContent=["hello"]), "pushContent", "1 entries for 3"),
    ("pushContent missing", seed(pushContent=None), "pushContent", "required"),
    ("pushData short", seed(pushData=["a", "b"]), "pushData", "2 entries for 3"),
    ("placeholder without value in content",
     seed(values=[{"{c}": "Tom", "{d}": ":2"}, {"{c}": "Jerry"}, {"{c}": "Rose", "{d}": ":10"}]),
     "values[1]", "{d} (used in content)"),
    ("placeholder without value in pushContent",
     seed(pushContent=["hello {c}", "hello {c}", "hi {nick}"]), "values[2]",
     "{nick} (used in pushContent[2])"),
    ("placeholder without value in pushData",
     seed(pushData=['{"order":"{order}"}'] * 3), "values[0]", "{order} (used in pushData[0])"),
    ("content over 128 KB", seed(content=BIG_CONTENT), "content", "at most 131072"),
    ("content rendered not JSON", seed(values=[{"{c}": 'Tom "T"', "{d}": ""}] * 3), "content",
     "toUserId[0]"),
    ("objectName over 32 characters", seed(objectName="App:" + "X" * 29), "objectName",
     "at most 32"),
    ("custom objectName starting RC:", seed(objectName="RC:PointsMsg"), "objectName",
     "may not start with 'RC:'"),
    ("fromUserId missing", seed(fromUserId=None), "fromUserId", "required"),
    ("fromUserId empty", seed(fromUserId=""), "fromUserId", "non-empty"),
    ("unknown field", seed(toUserIds=["21"]), "toUserIds", "not a field"),
    ("flag not 0 or 1", seed(isIncludeSender=2), "isIncludeSender", "0 or 1"),
    ("bool flag not a bool", seed(disablePush=1), "disablePush", "true or false"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("message", "field", "reason"),
    [pytest.param(m, f, r, id=name) for name, m, f, r in INVALID],
)
def test_invalid_message_is_refused_naming_the_field_and_nothing_is_sent(
    sender, fake, client, message, field, reason
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        sender.send(message)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert fake.requests == []
    assert walk(client, "/api/messages", "messages") == []  # and nothing recorded


def test_size_limits_carry_rongcloud_s_too_long_code() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        validate_template(seed(content=BIG_CONTENT))
    assert caught.value.code == 1005


def test_more_than_1000_recipients_in_one_request_is_refused(fake, clock) -> None:
    with client_for(fake.url, clock) as client, pytest.raises(InvalidMessageError) as caught:
        client.publish_template(many(1001))
    assert caught.value.field == "toUserId" and "at most 1000" in caught.value.reason
    assert fake.requests == []


@pytest.mark.parametrize("name", ["RC:TxtMsg", "RC:ImgTextMsg", "RC:CmdMsg", "App:PointsMsg"])
def test_builtin_and_custom_object_names_are_accepted(name) -> None:
    validate_template(seed(objectName=name))


def test_builtin_list_holds_the_types_the_issue_names() -> None:
    named = {"RC:TxtMsg", "RC:ImgMsg", "RC:VcMsg", "RC:ImgTextMsg", "RC:FileMsg", "RC:LBSMsg",
             "RC:SightMsg", "RC:CmdMsg", "RC:InfoNtf"}  # fmt: skip
    assert named <= BUILTIN_OBJECT_NAMES


def test_optional_fields_pass_through(fake, clock) -> None:
    message = seed(
        pushData=['{"points":"{d}"}'] * 3,
        pushExt=["", "", ""],
        isIncludeSender=1,
        verifyBlacklist=0,
        contentAvailable=1,
        disablePush=False,
        disableUpdateLastMsg=True,
        needReadReceipt=1,
        isCounted=1,
        busChannel="points",
        msgRandom=42,
    )
    with client_for(fake.url, clock) as client:
        client.publish_template(message)
    assert fake.requests[0].json == message


# --- splitting ---------------------------------------------------------------------


def test_2500_recipients_go_in_three_requests(sender, fake, client) -> None:
    message = many(2500)
    outcome = sender.send(message)

    assert [len(r.json["toUserId"]) for r in fake.requests] == [1000, 1000, 500]
    assert [u for r in fake.requests for u in r.json["toUserId"]] == message["toUserId"]
    for request in fake.requests:  # every per-recipient array cut along with toUserId
        body = request.json
        assert len(body["values"]) == len(body["pushContent"]) == len(body["toUserId"])
        for user, values in zip(body["toUserId"], body["values"], strict=True):
            assert values["{c}"] == f"name{int(user[1:])}"
        assert body["content"] == SEED["content"] and body["fromUserId"] == "system"
    assert [p.status for p in outcome.parts] == ["submitted"] * 3
    assert len(outcome.message_ids) == 3
    listed = walk(client, "/api/messages", "messages", send_id=outcome.send_id)
    assert sorted(m["msgid"] for m in listed) == sorted(outcome.message_ids)
    assert sorted(m["counts"]["submitted"] for m in listed) == [500, 1000, 1000]


# --- the rate limit ----------------------------------------------------------------


def test_12000_recipients_are_held_to_6000_a_minute(sender, fake, clock) -> None:
    shown: list[str] = []
    outcome = sender.send(many(12_000), progress=shown.append)

    assert len(fake.requests) == 12 and all(r.signed for r in fake.requests)
    assert clock.sleeps == [60.0]  # one wait, just long enough
    assert clock.now - clock.start == 60.0
    # When each request went out, by the Timestamp it was signed with (simulated time).
    sent = [(int(r.headers["Timestamp"]), len(r.json["toUserId"])) for r in fake.requests]
    assert [t - int(T0) for t, _ in sent] == [0] * 6 + [60] * 6
    for start, _ in sent:
        in_window = sum(n for t, n in sent if start <= t < start + 60)
        assert in_window <= 6000
    assert sum(n for _, n in sent) == 12_000
    assert "part 7/12: waiting 60.0 s for RongCloud's rate limit" in shown
    assert shown[-1] == "part 12/12: submitted"
    assert outcome.as_dict()["submitted"] == 12_000


def test_the_wait_is_logged(fake, clock, caplog) -> None:
    limiter = RateLimiter(limit=3, period=60, clock=clock, sleep=clock.sleep)
    with (
        client_for(fake.url, clock, limiter=limiter) as client,
        caplog.at_level("INFO", logger="sender.rongcloud"),
    ):
        client.publish_template(SEED)
        client.publish_template(SEED)
    assert clock.sleeps == [60.0]
    assert any("waiting 60.0 s to send to 3" in r.getMessage() for r in caplog.records)


def test_limiter_is_shared_by_threads_and_keeps_every_window() -> None:
    now = [T0]  # time stands still: only the reservations matter here
    limiter = RateLimiter(limit=6000, period=60, clock=lambda: now[0], sleep=lambda _s: None)
    taken: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            start = limiter.acquire(1000)
            with lock:
                taken.append((start, 1000))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(taken) == 24
    assert sorted({t - T0 for t, _ in taken}) == [0.0, 60.0, 120.0, 180.0]
    for start, _ in taken:
        assert sum(n for t, n in taken if start <= t < start + 60) <= 6000


def test_one_limiter_per_app_for_the_whole_process() -> None:
    seen: list[RateLimiter] = []
    thread = threading.Thread(target=lambda: seen.append(limiter_for("app-shared-test")))
    thread.start()
    thread.join()
    assert seen == [limiter_for("app-shared-test")]
    assert limiter_for("app-shared-test") is not limiter_for("another-app")
    assert (seen[0].limit, seen[0].period) == (6000, 60.0)


def test_limiter_refuses_what_can_never_fit() -> None:
    with pytest.raises(ValueError):
        RateLimiter(limit=10).acquire(11)


# --- failover ----------------------------------------------------------------------


def test_fails_over_to_the_backup_when_the_primary_refuses_connections(backup, clock) -> None:
    primary = f"http://127.0.0.1:{closed_port()}"
    with client_for(primary, clock, backup_base_url=backup.url) as client:
        result = client.publish_template(SEED)
    assert result.base_url == backup.url
    assert len(backup.requests) == 1 and backup.requests[0].json == SEED


def test_fails_over_to_the_backup_when_the_primary_answers_503(fake, backup, clock) -> None:
    fake.queue(rongcloud_error(1000, "internal error", 503))
    with client_for(fake.url, clock, backup_base_url=backup.url) as client:
        result = client.publish_template(SEED)
    assert result.base_url == backup.url
    assert len(fake.requests) == 1 and len(backup.requests) == 1
    assert backup.requests[0].signed


def test_backup_is_tried_once_only(fake, backup, clock) -> None:
    fake.queue(rongcloud_error(1000, "internal error", 503))
    backup.queue(rongcloud_error(1000, "internal error", 500))
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(SEED)
    assert (caught.value.code, caught.value.http_status) == (1000, 500)
    assert caught.value.base_url == backup.url
    assert len(fake.requests) == len(backup.requests) == 1


@pytest.mark.parametrize(("code", "status"), [(1002, 400), (1004, 401), (1009, 430), (1002, 200)])
def test_no_failover_on_a_4xx_or_business_error(fake, backup, clock, code, status) -> None:
    fake.error(code, "refused", status)
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(SEED)
    assert (caught.value.code, caught.value.message) == (code, "refused")
    assert caught.value.http_status == status
    assert len(fake.requests) == 1 and backup.requests == []


def test_nothing_listening_anywhere_is_never_sent(clock) -> None:
    primary = f"http://127.0.0.1:{closed_port()}"
    other = f"http://127.0.0.1:{closed_port()}"
    with (
        client_for(primary, clock, backup_base_url=other) as client,
        pytest.raises(NotSentError) as caught,
    ):
        client.publish_template(SEED)
    assert caught.value.tried == [primary, other]


def test_no_answer_after_sending_is_an_unknown_outcome_never_resent(fake, backup, clock) -> None:
    fake.queue(Reply(drop=True))  # the request arrived; the answer never came
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(UnknownOutcomeError) as caught,
    ):
        client.publish_template(SEED)
    assert caught.value.base_url == fake.url
    assert len(fake.requests) == 1 and backup.requests == []  # it may have gone out


# --- RongCloud's answers -----------------------------------------------------------


def test_rate_limited_1008_is_retried_with_backoff_then_succeeds(fake, clock) -> None:
    fake.error(1008, "too many requests", 429)
    fake.error(1008, "too many requests", 429)
    with client_for(fake.url, clock) as client:
        result = client.publish_template(SEED)
    assert result.code == 200
    assert len(fake.requests) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_1008_retries_are_bounded(fake, clock) -> None:
    for _ in range(4):
        fake.error(1008, "too many requests", 429)
    retry = RetryPolicy(max_rate_limit_retries=2)
    with (
        client_for(fake.url, clock, retry=retry) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(SEED)
    assert caught.value.code == 1008 and len(fake.requests) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_a_wrong_secret_is_refused_with_1004(fake, clock) -> None:
    with (
        client_for(fake.url, clock, app_secret="not-the-secret") as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(SEED)
    assert (caught.value.code, caught.value.http_status) == (1004, 401)
    assert "signature" in caught.value.message
    assert not fake.requests[0].signed


def test_an_answer_without_an_envelope_is_an_error(fake, clock) -> None:
    fake.queue(Reply(status=200, body=b"<html>ok</html>", content_type="text/html"))
    with client_for(fake.url, clock) as client, pytest.raises(ProviderRefusedError) as caught:
        client.publish_template(SEED)
    assert caught.value.code is None and "without a JSON envelope" in caught.value.message


# --- tracking: what the read API shows ---------------------------------------------


def test_a_send_is_recorded_and_read_like_any_message(sender, fake, client, engine) -> None:
    outcome = sender.send(SEED)

    [msgid] = outcome.message_ids
    assert msgid == f"rc:{outcome.send_id}:0"
    response = api_get(client, f"/api/messages/{msgid}")
    assert response.status_code == 200, response.json
    summary = response.json
    assert summary["provider"] == "rongcloud" and summary["channelkey"] == APP_KEY
    assert summary["send"] == {"code": 200, "message": "success"}
    assert summary["send_id"] == outcome.send_id and summary["part"] == 0
    assert summary["params"] == {"umstrack_send": outcome.send_id}
    assert summary["sent_at"] is not None
    assert summary["counts"]["submitted"] == 3
    assert sum(summary["counts"].values()) == 3
    assert summary["targets"]["total"] == 3
    assert summary["targets"]["by_status"]["submitted"] == 3

    events = walk(client, f"/api/messages/{msgid}/timeline", "events")
    assert sorted(e["userid"] for e in events) == ["21", "22", "23"]
    assert {(e["status"], e["channel"], e["sender"]) for e in events} == {
        ("submitted", "rongcloud", 100)
    }
    assert all(e["error"] is None for e in events)
    assert all(e["params"] == {"umstrack_send": outcome.send_id} for e in events)
    targets = walk(client, f"/api/messages/{msgid}/targets", "targets")
    assert sorted((t["recipient"], t["status"], t["channel"]) for t in targets) == [
        ("21", "submitted", "rongcloud"),
        ("22", "submitted", "rongcloud"),
        ("23", "submitted", "rongcloud"),
    ]
    with Session(engine) as session:
        row = session.scalars(select(Message).where(Message.msgid == msgid)).one()
    assert row.request == SEED  # the request as sent ...
    assert APP_SECRET not in json.dumps(row.request)  # ... and no secret in it


def test_a_failed_send_is_recorded_as_submit_failed_with_the_error(sender, fake, client) -> None:
    fake.error(1002, "toUserId 22 does not exist", 400)
    with pytest.raises(SendFailedError) as caught:
        sender.send(SEED)

    assert isinstance(caught.value.error, ProviderRefusedError)
    [part] = caught.value.outcome.parts
    assert (part.status, part.code) == ("failed", 1002)
    summary = api_get(client, f"/api/messages/{part.recorded_as}").json
    assert summary["provider"] == "rongcloud"
    assert summary["send"] == {"code": 1002, "message": "toUserId 22 does not exist"}
    assert summary["counts"]["submit_failed"] == 3 and summary["counts"]["submitted"] == 0
    assert summary["targets"]["by_status"]["submit_failed"] == 3
    events = walk(client, f"/api/messages/{part.recorded_as}/timeline", "events")
    assert {e["channel"] for e in events} == {"rongcloud"}
    assert [e["error"] for e in events] == [
        {"code": 1002, "message": "toUserId 22 does not exist"}
    ] * 3


def test_a_failed_part_stops_the_send_and_later_parts_are_not_tried(sender, fake, client) -> None:
    def progress(text: str) -> None:
        # Refuse the second request only: queued once the first has been answered.
        if text == "part 2/3: sending to 1000 recipients":
            fake.error(1002, "refused", 400)

    with pytest.raises(SendFailedError) as caught:
        sender.send(many(2500), progress=progress)

    outcome = caught.value.outcome
    assert [(p.number, p.status, p.code) for p in outcome.parts] == [
        (0, "submitted", 200),
        (1, "failed", 1002),
        (2, "not_tried", None),
    ]
    assert outcome.parts[2].recorded_as is None
    assert len(fake.requests) == 2
    listed = walk(client, "/api/messages", "messages", send_id=outcome.send_id)
    assert sorted((m["part"], m["counts"]["submitted"], m["counts"]["submit_failed"])
                  for m in listed) == [(0, 1000, 0), (1, 0, 1000)]  # fmt: skip


# --- the command line --------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    # The stand-in entry point; `umstrack rongcloud-send` runs the same run().
    base = {k: v for k, v in os.environ.items() if not k.startswith("RONGCLOUD_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "rongcloud-send", *args],
        env={**base, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli_env(database_url, fake) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "RONGCLOUD_APP_KEY": APP_KEY,
        "RONGCLOUD_APP_SECRET": APP_SECRET,
        "RONGCLOUD_API_BASE": fake.url,
    }


def test_cli_sends_prints_the_result_and_records_it(cli_env, fake, client, tmp_path) -> None:
    path = tmp_path / "message.json"
    path.write_text(json.dumps(SEED), "utf-8")
    result = _cli(cli_env, str(path))

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["provider"] == "rongcloud" and printed["submitted"] == 3
    [msgid] = printed["messages"]
    assert "part 1/1: sending to 3 recipients" in result.stderr  # progress, on stderr
    assert len(fake.requests) == 1 and fake.requests[0].signed
    assert api_get(client, f"/api/messages/{msgid}").json["counts"]["submitted"] == 3


def test_cli_dry_run_prints_each_recipient_s_content_and_sends_nothing(fake, database_url) -> None:
    # No credentials needed: a dry run only checks and renders.
    result = _cli({"DATABASE_URL": database_url}, "--dry-run", "-", stdin=json.dumps(SEED))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [(r["toUserId"], json.loads(r["content"])["content"], r["pushContent"])
            for r in printed["rendered"]] == [
        ("21", "Tom:2", "hello Tom"),
        ("22", "Jerry:5", "hello Jerry"),
        ("23", "Rose:10", "hello Rose"),
    ]  # fmt: skip
    assert printed["requests"] == [{"part": 0, "recipients": 3}]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [
        (["-"], json.dumps(seed(objectName="RC:Points")), "objectName"),
        (["--dry-run", "-"], json.dumps(seed(values=SEED["values"][:1])), "values"),
        (["-"], "{not json", "cannot read"),
    ],
)
def test_cli_refuses_invalid_input_with_exit_2(cli_env, fake, args, stdin, reason) -> None:
    result = _cli(cli_env, *args, stdin=stdin)
    assert result.returncode == 2
    assert reason in result.stderr and result.stdout == ""
    assert fake.requests == []


def test_cli_without_credentials_exits_2(database_url, fake) -> None:
    result = _cli({"DATABASE_URL": database_url}, "-", stdin=json.dumps(SEED))
    assert result.returncode == 2 and "RONGCLOUD_APP_KEY" in result.stderr
    assert fake.requests == []


def test_cli_reports_a_rongcloud_error_with_exit_1(cli_env, fake) -> None:
    env = {**cli_env, "RONGCLOUD_APP_SECRET": "wrong-secret"}
    result = _cli(env, "-", stdin=json.dumps(SEED))
    assert result.returncode == 1
    assert "1004" in result.stderr and "signature error" in result.stderr
    printed = json.loads(result.stdout)
    assert printed["parts"][0]["status"] == "failed" and printed["parts"][0]["code"] == 1004


def test_add_arguments_and_run_work_in_process(capsys, tmp_path) -> None:
    parser = argparse.ArgumentParser(prog="umstrack rongcloud-send")
    add_arguments(parser)
    path = tmp_path / "message.json"
    path.write_text(json.dumps(SEED), "utf-8")

    args = parser.parse_args([str(path), "--dry-run"])
    assert args.func is run
    assert run(args) == 0
    assert json.loads(capsys.readouterr().out) == preview_template(SEED)

    path.write_text(json.dumps(seed(toUserId=[])), "utf-8")
    assert run(parser.parse_args([str(path), "--dry-run"])) == 2
    assert "toUserId" in capsys.readouterr().err
