"""UmsClient: what goes on the wire, the callback url and params of a send, and the
client's settings."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from sender.errors import ProviderRefusedError
from sender.http import DEFAULT_TIMEOUT
from sender.ums.client import UmsClient
from tests.fake_ums import FakeUms
from tests.ums_client import (
    AUTHORIZATION,
    CALLBACK,
    CHANNEL,
    MESSAGE,
    MSGID,
    SECRET,
    TEMPLATE,
    TIMEOUT,
    expected_body,
    without_targets,
)

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
