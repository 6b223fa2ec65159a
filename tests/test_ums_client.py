"""UmsClient against the fake UMS server, over real loopback HTTP."""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import pickle
import re
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sender.errors import (
    InvalidMessageError,
    NotSentError,
    ProviderError,
    ProviderRefusedError,
    UnknownOutcomeError,
)
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.ums.client import SendResult, UmsClient
from tests.fake_ums import FakeUms, Reply

CHANNEL = "7d431e42dfa6a6d693ac2d04"
SECRET = "5e987ac6d2e04d95a9d8f0d1"
CALLBACK = "https://track.example.com/callbacks/ums"
MSGID = "v:1t:1603707455p:27133n:2"
MSGID_FORMAT = re.compile(r"v:1t:\d+p:\d+n:\d+")
TIMEOUT = (0.3, 0.3)
# Computed here, independently of the client.
AUTHORIZATION = "Basic " + base64.b64encode(f"{CHANNEL}:{SECRET}".encode()).decode()

MESSAGE: dict[str, Any] = {
    "aud_userid": ["user1", "user2"],
    "msg_sms": [{"sign_id": 1, "temp_id": 2, "temp_para": {"code": "1234"}}],
    "option": {"sendno": "order-42"},
    "callback": {"params": {"order_id": "42"}},
}
TEMPLATE: dict[str, Any] = {
    "aud_userid": ["user1"],
    "template_id": 7,
    "template_para": {"user": "Ann"},
    "option": {"sendno": "tpl-1"},
}


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: FakeUms, sleeps: list[float]) -> Iterator[UmsClient]:
    with UmsClient(
        CHANNEL, SECRET, fake.url, callback_url=CALLBACK, timeout=TIMEOUT, sleep=sleeps.append
    ) as ums:
        yield ums


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full, so a new connect hangs (Linux drops the SYN)."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        for _ in range(4):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.05)
        yield port


def without_targets(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if not key.startswith("aud_")}


def expected_body(message: dict[str, Any], send_id: str, url: str | None = CALLBACK) -> Any:
    body = copy.deepcopy(message)
    callback = body.setdefault("callback", {})
    callback["params"] = {**callback.get("params", {}), "umstrack_send": send_id}
    if url is not None:
        callback["url"] = url
    return body


# --- what goes on the wire -------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "path", "message"),
    [
        ("send", "/v1/sent", MESSAGE),
        ("broadcast", "/v1/broadcast", without_targets(MESSAGE)),
        ("template_send", "/v1/template/sent", TEMPLATE),
        ("template_broadcast", "/v1/template/broadcast", without_targets(TEMPLATE)),
    ],
)
def test_send_kinds_request_line_headers_and_body(
    client: UmsClient, fake: FakeUms, call: str, path: str, message: dict[str, Any]
) -> None:
    result = getattr(client, call)(message, send_id="s1")

    [req] = fake.requests
    assert req.requestline == f"POST {path} HTTP/1.1"
    assert req.headers["Authorization"] == AUTHORIZATION
    assert req.headers["Content-Type"] == "application/json"
    assert req.json == expected_body(message, "s1")
    assert result.body == req.json


def test_retract_keeps_colons_of_the_msgid_in_the_path(client: UmsClient, fake: FakeUms) -> None:
    result = client.retract(MSGID)

    [req] = fake.requests
    assert req.requestline == f"POST /v1/retract/{MSGID} HTTP/1.1"
    assert req.headers["Authorization"] == AUTHORIZATION
    assert req.body == b""
    assert (result.msgid, result.code, result.message) == (MSGID, 0, "success")


def test_retract_escapes_characters_that_would_change_the_path(
    client: UmsClient, fake: FakeUms
) -> None:
    client.retract("a/b?c#d %e")

    assert fake.paths() == ["/v1/retract/a%2Fb%3Fc%23d%20%25e"]


def test_retract_refuses_dot_segments(client: UmsClient, fake: FakeUms) -> None:
    for msgid in ("", ".", ".."):
        with pytest.raises(ValueError):
            client.retract(msgid)
    assert fake.requests == []


def test_retract_failure_raises(client: UmsClient, fake: FakeUms) -> None:
    fake.error(1015055, "message already withdrawn")

    with pytest.raises(ProviderRefusedError) as info:
        client.retract(MSGID)

    assert (info.value.code, info.value.http_status) == (1015055, 400)
    assert info.value.message == "message already withdrawn"


# --- callback url and params -------------------------------------------------------------


def test_default_callback_url_is_filled_in(client: UmsClient, fake: FakeUms) -> None:
    client.send(MESSAGE, send_id="s1")

    assert fake.requests[0].json["callback"]["url"] == CALLBACK


def test_per_call_callback_url_wins_over_the_default(client: UmsClient, fake: FakeUms) -> None:
    client.send(MESSAGE, send_id="s1", callback_url="https://other.example.com/cb")

    assert fake.requests[0].json["callback"]["url"] == "https://other.example.com/cb"


def test_callback_url_in_the_message_is_kept(client: UmsClient, fake: FakeUms) -> None:
    message = {**MESSAGE, "callback": {"url": "https://own.example.com/cb"}}

    client.send(message, send_id="s1")

    assert fake.requests[0].json["callback"] == {
        "url": "https://own.example.com/cb",
        "params": {"umstrack_send": "s1"},
    }


def test_conflicting_callback_urls_raise_before_sending(client: UmsClient, fake: FakeUms) -> None:
    message = {**MESSAGE, "callback": {"url": "https://own.example.com/cb"}}

    with pytest.raises(ValueError, match="callback"):
        client.send(message, callback_url="https://other.example.com/cb")
    assert fake.requests == []


def test_without_any_callback_url_params_are_still_added(fake: FakeUms) -> None:
    with UmsClient(CHANNEL, SECRET, fake.url, timeout=TIMEOUT) as ums:
        ums.send(MESSAGE, send_id="s1")

    assert fake.requests[0].json["callback"] == {
        "params": {"order_id": "42", "umstrack_send": "s1"}
    }


def test_params_merge_keeps_caller_params_and_leaves_caller_dict_alone(
    client: UmsClient, fake: FakeUms
) -> None:
    message = copy.deepcopy(MESSAGE)

    result = client.send(message, send_id="s1")

    assert message == MESSAGE  # not mutated, not even nested dicts
    assert fake.requests[0].json["callback"]["params"] == {
        "order_id": "42",
        "umstrack_send": "s1",
    }
    result.body["callback"]["params"]["x"] = 1  # the result does not share the caller's dicts
    assert message == MESSAGE


def test_send_id_is_generated_when_not_given(client: UmsClient, fake: FakeUms) -> None:
    first = client.send(MESSAGE)
    second = client.send(MESSAGE)

    assert re.fullmatch(r"[0-9a-f]{32}", first.send_id)
    assert first.send_id != second.send_id
    sent_ids = [req.json["callback"]["params"]["umstrack_send"] for req in fake.requests]
    assert sent_ids == [first.send_id, second.send_id]


def test_conflicting_tracking_key_raises_before_sending(client: UmsClient, fake: FakeUms) -> None:
    message = {**MESSAGE, "callback": {"params": {"umstrack_send": "someone-else"}}}

    with pytest.raises(ValueError, match="umstrack_send"):
        client.send(message, send_id="s1")
    assert fake.requests == []


def test_same_tracking_key_value_is_accepted(client: UmsClient, fake: FakeUms) -> None:
    message = {**MESSAGE, "callback": {"params": {"umstrack_send": "s1"}}}

    client.send(message, send_id="s1")

    assert fake.requests[0].json["callback"]["params"] == {"umstrack_send": "s1"}


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


# --- configuration ------------------------------------------------------------------------


def test_timeouts_are_explicit(fake: FakeUms) -> None:
    with (
        UmsClient(CHANNEL, SECRET, fake.url) as default,
        UmsClient(CHANNEL, SECRET, fake.url, timeout=(1.5, 4)) as custom,
    ):
        assert default.timeout == DEFAULT_TIMEOUT
        assert custom.timeout == (1.5, 4.0)
    with pytest.raises(ValueError):
        UmsClient(CHANNEL, SECRET, fake.url, timeout=(0, 1))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="channelkey"):
        UmsClient("a:b", SECRET)
    with pytest.raises(ValueError, match="base_url"):
        UmsClient(CHANNEL, SECRET, "api.ums.jiguang.cn")


def test_closed_client_refuses_to_send(fake: FakeUms) -> None:
    with UmsClient(CHANNEL, SECRET, fake.url, timeout=TIMEOUT) as ums:
        pass

    with pytest.raises(RuntimeError):
        ums.send(MESSAGE)
    assert fake.requests == []


def test_base_url_trailing_slash(fake: FakeUms) -> None:
    with UmsClient(CHANNEL, SECRET, fake.url + "/", timeout=TIMEOUT) as ums:
        ums.send(MESSAGE)

    assert fake.paths() == ["/v1/sent"]
