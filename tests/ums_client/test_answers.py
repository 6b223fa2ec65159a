"""UmsClient: what it makes of UMS's answers and of their absence (success, refusals,
the safe retries, outcomes it cannot know)."""

from __future__ import annotations

import dataclasses
import pickle
import sys
import time

import pytest

from receiver.local import free_port
from sender.errors import (
    InvalidMessageError,
    NotSentError,
    ProviderError,
    ProviderRefusedError,
    UnknownOutcomeError,
)
from sender.http import RetryPolicy
from sender.ums.client import SendResult, UmsClient
from tests.fake_ums import FakeUms, Reply
from tests.ums_client import (
    CHANNEL,
    MESSAGE,
    MSGID,
    MSGID_FORMAT,
    SECRET,
    TIMEOUT,
    full_backlog,
)

# --- answers ------------------------------------------------------------------------------


def test_success_result(client: UmsClient, fake: FakeUms) -> None:
    result = client.send(MESSAGE, send_id="s1")

    assert isinstance(result, SendResult)
    assert MSGID_FORMAT.fullmatch(result.msgid)
    assert (result.sendno, result.code, result.message, result.send_id) == (
        "order-42",
        0,
        "success",
        "s1",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.msgid = "x"  # type: ignore[misc]


def test_channel_closed(client: UmsClient, fake: FakeUms) -> None:
    fake.error(1015005, "channel closed")

    with pytest.raises(ProviderRefusedError) as info:
        client.send(MESSAGE, send_id="s1")

    error = info.value
    assert (error.code, error.message, error.http_status) == (1015005, "channel closed", 400)
    assert (error.sendno, error.send_id) == ("order-42", "s1")
    assert len(fake.requests) == 1


def test_auth_failed_with_http_401(fake: FakeUms) -> None:
    with (
        UmsClient(CHANNEL, "wrong-secret", fake.url, timeout=TIMEOUT) as ums,
        pytest.raises(ProviderRefusedError) as info,
    ):
        ums.send(MESSAGE)

    assert (info.value.code, info.value.http_status) == (4005, 401)
    assert len(fake.requests) == 1


def test_auth_failed_with_http_400(client: UmsClient, fake: FakeUms) -> None:
    fake.error(4005, "auth failed", status=400)

    with pytest.raises(ProviderRefusedError) as info:
        client.send(MESSAGE)

    assert (info.value.code, info.value.http_status) == (4005, 400)


def test_non_json_502(client: UmsClient, fake: FakeUms) -> None:
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    fake.queue(Reply(502, body=html, content_type="text/html"))

    with pytest.raises(ProviderRefusedError) as info:
        client.send(MESSAGE, send_id="s1")

    error = info.value
    assert (error.code, error.http_status, error.sendno) == (None, 502, "order-42")
    assert "HTTP 502" in str(error)
    assert "502 Bad Gateway" in error.message
    assert len(fake.requests) == 1  # a 5xx is not retried: the message may have gone out


def test_long_non_json_body_is_cut_short(client: UmsClient, fake: FakeUms) -> None:
    fake.queue(Reply(200, body=b"x" * 10_000, content_type="text/plain"))

    with pytest.raises(ProviderRefusedError) as info:
        client.send(MESSAGE)

    assert info.value.code is None
    assert len(info.value.message) < 400


def test_success_without_msgid_is_an_unknown_outcome(client: UmsClient, fake: FakeUms) -> None:
    fake.queue(Reply(200, {"code": 0, "message": "success"}))

    with pytest.raises(UnknownOutcomeError):
        client.send(MESSAGE)


def test_errors_survive_pickling() -> None:
    for error in (
        ProviderRefusedError(1015005, "closed", 400, provider="ums", sendno="n1", send_id="s1"),
        UnknownOutcomeError("read timeout", provider="ums", sendno="n1", send_id="s1"),
        NotSentError("refused", provider="ums", sendno="n1", send_id="s1", attempts=3),
        InvalidMessageError("aud_userid", "must be an array", 4004, provider="ums"),
    ):
        copy_ = pickle.loads(pickle.dumps(error))
        assert (type(copy_), str(copy_)) == (type(error), str(error))
        assert copy_.__dict__ == error.__dict__


# --- retries ------------------------------------------------------------------------------


def test_rate_limit_is_retried_with_backoff(
    client: UmsClient, fake: FakeUms, sleeps: list[float]
) -> None:
    fake.error(1015030, "rate limited")
    fake.error(1015030, "rate limited")

    result = client.send(MESSAGE, send_id="s1")

    assert MSGID_FORMAT.fullmatch(result.msgid)
    assert sleeps == [1.0, 2.0]
    assert len(fake.requests) == 3
    assert all(req.json == fake.requests[0].json for req in fake.requests)


def test_rate_limit_every_time_raises_after_the_bound(
    client: UmsClient, fake: FakeUms, sleeps: list[float]
) -> None:
    for _ in range(10):
        fake.error(1015030, "rate limited")

    with pytest.raises(ProviderRefusedError) as info:
        client.send(MESSAGE)

    assert info.value.code == 1015030
    assert len(fake.requests) == 4  # the first try and max_rate_limit_retries=3
    assert sleeps == [1.0, 2.0, 4.0]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)

    assert [policy.delay(n) for n in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_connection_refused_is_retried_then_reported_never_sent(sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        UmsClient(CHANNEL, SECRET, url, timeout=TIMEOUT, sleep=sleeps.append) as ums,
        pytest.raises(ProviderError) as info,
    ):
        ums.send(MESSAGE, send_id="s1")

    assert isinstance(info.value, NotSentError)
    assert "never sent" in str(info.value)
    assert (info.value.attempts, info.value.sendno, info.value.send_id) == (3, "order-42", "s1")
    assert sleeps == [1.0, 2.0]  # max_connect_retries=2


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full queue")
def test_connect_timeout_counts_as_never_sent(sleeps: list[float]) -> None:
    with (
        full_backlog() as port,
        UmsClient(
            CHANNEL, SECRET, f"http://127.0.0.1:{port}", timeout=TIMEOUT, sleep=sleeps.append
        ) as ums,
        pytest.raises(NotSentError) as info,
    ):
        ums.send(MESSAGE)

    assert info.value.attempts == 3
    assert "ConnectTimeout" in info.value.reason or "timed out" in info.value.reason


# --- unknown outcomes ------------------------------------------------------------------


def test_read_timeout_on_a_send_is_not_retried(
    client: UmsClient, fake: FakeUms, sleeps: list[float]
) -> None:
    fake.queue(Reply(delay=2.0))

    started = time.monotonic()
    with pytest.raises(UnknownOutcomeError) as info:
        client.send(MESSAGE, send_id="s1")
    elapsed = time.monotonic() - started

    assert (info.value.sendno, info.value.send_id) == ("order-42", "s1")
    assert "may or may not have been sent" in str(info.value)
    assert len(fake.requests) == 1
    assert sleeps == []
    assert elapsed < 1.5  # the explicit 0.3 s read timeout applied, not the 2 s delay


@pytest.mark.parametrize("reply", [Reply(drop=True), Reply(reset=True)], ids=["close", "reset"])
def test_connection_lost_after_sending_is_not_retried(
    client: UmsClient, fake: FakeUms, sleeps: list[float], reply: Reply
) -> None:
    fake.queue(reply)

    with pytest.raises(UnknownOutcomeError) as info:
        client.send(MESSAGE, send_id="s1")

    assert info.value.send_id == "s1"
    assert len(fake.requests) == 1
    assert sleeps == []


def test_lost_connection_is_not_mistaken_for_never_sent_inside_an_except_block(
    client: UmsClient, fake: FakeUms
) -> None:
    # The caller handles a connection-refused error and sends again: that error ends up
    # in the __context__ chain of the next failure, which must still count as maybe-sent.
    fake.queue(Reply(drop=True))
    dead = f"http://127.0.0.1:{free_port()}"
    policy = RetryPolicy(max_connect_retries=0)
    with UmsClient(CHANNEL, SECRET, dead, timeout=TIMEOUT, retry=policy) as other:
        try:
            other.send(MESSAGE)
        except NotSentError:
            with pytest.raises(UnknownOutcomeError):
                client.send(MESSAGE)
    assert len(fake.requests) == 1


def test_read_timeout_on_retract(client: UmsClient, fake: FakeUms) -> None:
    fake.queue(Reply(delay=2.0))

    with pytest.raises(UnknownOutcomeError):
        client.retract(MSGID)
    assert len(fake.requests) == 1
