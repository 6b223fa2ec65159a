"""What the UMS emulator's tests share: settings, sample messages, and a callback URL on
loopback that records what arrives."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from sender.emulator import EmulatorConfig
from sender.errors import ProviderRefusedError
from tests.helpers import CHANNEL, OTHER_CHANNEL, OTHER_SECRET, SECRET, basic_auth

CHANNELS = {CHANNEL: SECRET, OTHER_CHANNEL: OTHER_SECRET}
MSGID_FORMAT = re.compile(r"v:1t:(\d+)p:\d+n:\d+")
HTTP_TIMEOUT = (2.0, 10.0)
APP = [{"platform": "all", "notification": {"alert": "Your order shipped"}}]
SMS = [{"sign_id": 1, "temp_id": 2, "temp_para": {"code": "1234"}}]
EMAIL = [{"subject": "Order 42", "text": "It shipped."}]
WECOM = [{"msgtype": "text", "text": {"content": "It shipped."}}]


def auth_header(channelkey: str = CHANNEL, secret: str = SECRET) -> str:
    """The Authorization value UMS sends for a channel."""
    return basic_auth(channelkey, secret)["Authorization"]


def config(**overrides: Any) -> EmulatorConfig:
    """Emulator settings for tests: UMS's rules with intervals cut to fractions of a second."""
    settings: dict[str, Any] = {
        "channels": CHANNELS,
        "flush_interval": 0.05,
        "retry_interval": 0.2,
        "seed": 20240601,
        "timeout": (1.0, 5.0),
    }
    return EmulatorConfig(**{**settings, **overrides})


def expect_code(
    call: Callable[..., Any], *args: Any, code: int, http: int = 400
) -> ProviderRefusedError:
    """Call a UmsClient method that UMS refuses; check its business code and HTTP status."""
    with pytest.raises(ProviderRefusedError) as caught:
        call(*args)
    assert (caught.value.code, caught.value.http_status) == (code, http), caught.value
    return caught.value


def sample_messages() -> list[tuple[str, dict[str, Any]]]:
    """Sends covering every audience kind, the four endpoints and every channel."""
    return [
        (
            "send",
            {
                "aud_userid": [f"user{i}" for i in range(20)],
                "msg_app": APP,
                "msg_sms": SMS,
                "option": {"sendno": "userids"},
                "callback": {"params": {"order_id": "42"}},
            },
        ),
        (
            "send",
            {
                "aud_tag": ["vip", "新客"],
                "aud_segment": ["seg1"],
                "msg_email": EMAIL,
                "msg_wechatwk": WECOM,
            },
        ),
        (
            "send",
            {
                "aud_sms": [{"data": [f"1380000{i:04d}" for i in range(15)]}],
                "msg_sms": SMS,
                "aud_email": [{"data": ["a@example.com", "b@example.com"]}],
                "msg_email": EMAIL,
            },
        ),
        (
            "send",
            {
                "aud_wechatwk_linkedcorp": [{"data": ["wwcorp/u1", "wwcorp/u2"]}],
                "msg_wechatwk": WECOM,
            },
        ),
        ("broadcast", {"msg_app": APP}),
        (
            "template_send",
            {
                "aud_userid": [f"t{i}" for i in range(10)],
                "template_id": 3,
                "template_para": {"name": "Ann"},
                "app_para": {"platform": ["android"]},
            },
        ),
    ]


@dataclass(frozen=True)
class Post:
    """One callback POST as it arrived."""

    at: float
    authorization: str | None
    content_type: str | None
    body: Any


class Callbacks:
    """A callback URL on loopback that records what arrives and answers as scripted."""

    def __init__(
        self,
        *,
        echo: bool = True,
        echoes: Sequence[bool] = (),
        statuses: Sequence[int] = (),
        default: int = 200,
        port: int = 0,
    ) -> None:
        self.echo = echo
        self.echoes = deque(echoes)  # whether the first URL checks are answered right, then `echo`
        self.statuses = deque(statuses)  # answers to the first POSTs, then `default`
        self.default = default
        self.gets: list[tuple[float, str | None, dict[str, list[str]]]] = []
        self.posts: list[Post] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/callbacks/ums"

    def __enter__(self) -> Callbacks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [record for post in self.posts for record in post.body]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                with owner._lock:
                    owner.gets.append((time.monotonic(), self.headers["Authorization"], query))
                    echo = owner.echoes.popleft() if owner.echoes else owner.echo
                echostr = query.get("echostr", [""])[0]
                self._reply(200, (echostr if echo else "not-the-echostr").encode())

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner._lock:
                    owner.posts.append(
                        Post(
                            time.monotonic(),
                            self.headers["Authorization"],
                            self.headers["Content-Type"],
                            body,
                        )
                    )
                    status = owner.statuses.popleft() if owner.statuses else owner.default
                self._reply(status, json.dumps({"received": len(body)}).encode())

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
