"""A scriptable fake RongCloud server API on loopback that checks signatures as RongCloud does."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PUBLISH_TEMPLATE = "/message/private/publish_template.json"


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived, and whether its signature was good."""

    method: str
    path: str
    headers: Message  # case-insensitive: headers["app-key"]
    body: bytes
    json: Any  # the parsed body, or None when it was not JSON
    signed: bool


@dataclass(frozen=True)
class Reply:
    """A scripted answer; with neither json nor body, the default success answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None  # raw body, sent as is
    content_type: str = "application/json"
    drop: bool = False  # close the connection without answering (after reading the request)


def rongcloud_error(code: int, message: str, status: int) -> Reply:
    """A RongCloud failure envelope."""
    return Reply(status=status, json={"code": code, "errorMessage": message})


def _header(headers: Message, name: str) -> str | None:
    """A signing header in either of its forms (``Nonce`` or ``RC-Nonce``)."""
    value = headers.get(name)
    return value if value is not None else headers.get(f"RC-{name}")


class FakeRongCloud:
    """Fake RongCloud on 127.0.0.1, used as a context manager.

    Every request must carry App-Key, Nonce, Timestamp and Signature =
    hex(SHA1(secret + nonce + timestamp)) for a known app (HTTP 401, code 1004
    otherwise); the publish_template body must be JSON with at most 1000 recipients and
    one values / pushContent entry each (HTTP 400, code 1002 otherwise). Signed requests
    are answered from the queued replies, then with {"code": 200, "messageUIDs": [...]}.
    """

    def __init__(self, apps: Mapping[str, str]) -> None:
        self.apps = dict(apps)
        self.requests: list[Recorded] = []  # every request received, in arrival order
        self.port = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeRongCloud:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
            self._server = None
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeRongCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next well-signed requests with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def error(self, code: int, message: str = "error", status: int = 400) -> None:
        """Queue a RongCloud failure envelope."""
        self.queue(rongcloud_error(code, message, status))

    def signature_ok(self, headers: Message) -> bool:
        """Check the signing headers the way RongCloud does."""
        key = _header(headers, "App-Key")
        nonce, timestamp = _header(headers, "Nonce"), _header(headers, "Timestamp")
        signature = _header(headers, "Signature")
        if key not in self.apps or not nonce or not timestamp or not signature:
            return False
        expected = hashlib.sha1((self.apps[key] + nonce + timestamp).encode()).hexdigest()
        return hmac.compare_digest(signature.encode("latin-1"), expected.encode())

    def _record(self, req: Recorded) -> Reply | None:
        with self._lock:
            self.requests.append(req)
            return self._script.popleft() if req.signed and self._script else None

    def _success(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._seq += 1
            seq = self._seq
        return {
            "code": 200,
            "messageUIDs": [
                {"userId": user, "messageUID": f"FAKE-{seq:04d}-{i:04d}"}
                for i, user in enumerate(body["toUserId"])
            ],
        }


def _invalid(body: Any) -> str | None:
    """Why RongCloud would answer 1002 to this body, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    for name in ("fromUserId", "toUserId", "objectName", "content", "values", "pushContent"):
        if name not in body:
            return f"{name} is required"
    users = body["toUserId"]
    if not isinstance(users, list) or not 1 <= len(users) <= 1000:
        return "toUserId must have 1 to 1000 user ids"
    for name in ("values", "pushContent"):
        if not isinstance(body[name], list) or len(body[name]) != len(users):
            return f"{name} must have one entry per toUserId"
    return None


def _handler_for(fake: FakeRongCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            signed = fake.signature_ok(self.headers)
            req = Recorded(self.command, self.path, self.headers, raw, parsed, signed)
            reply = fake._record(req)
            if not signed:
                self._answer(rongcloud_error(1004, "signature error", 401))
                return
            if reply is not None and reply.drop:
                self.close_connection = True
                return
            if reply is not None:
                self._answer(reply)
                return
            if self.path != PUBLISH_TEMPLATE:
                self._answer(rongcloud_error(404, f"no API at {self.path}", 404))
                return
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            problem = "Content-Type is not application/json"
            if content_type == "application/json":
                problem = _invalid(parsed) or ""
            if problem:
                self._answer(rongcloud_error(1002, problem, 400))
                return
            assert isinstance(parsed, dict)  # _invalid() found none of the alternatives
            self._answer(Reply(json=fake._success(parsed)))

        def _answer(self, reply: Reply) -> None:
            payload = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
