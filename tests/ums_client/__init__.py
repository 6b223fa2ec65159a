"""Tests of UmsClient against the fake UMS server, over real loopback HTTP.

The channel, messages and helpers they share; their fixtures are in conftest.py."""

from __future__ import annotations

import contextlib
import copy
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

from tests.helpers import basic_auth

CHANNEL = "7d431e42dfa6a6d693ac2d04"
SECRET = "5e987ac6d2e04d95a9d8f0d1"
CALLBACK = "https://track.example.com/callbacks/ums"
MSGID = "v:1t:1603707455p:27133n:2"
MSGID_FORMAT = re.compile(r"v:1t:\d+p:\d+n:\d+")
TIMEOUT = (0.3, 0.3)
# Computed by the tests' own helper, independently of the client.
AUTHORIZATION = basic_auth(CHANNEL, SECRET)["Authorization"]

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
    """The message without its aud_xxx, for a broadcast."""
    return {key: value for key, value in message.items() if not key.startswith("aud_")}


def expected_body(message: dict[str, Any], send_id: str, url: str | None = CALLBACK) -> Any:
    """The body a send of message should post: its callback with the url and send id."""
    body = copy.deepcopy(message)
    callback = body.setdefault("callback", {})
    callback["params"] = {**callback.get("params", {}), "umstrack_send": send_id}
    if url is not None:
        callback["url"] = url
    return body
