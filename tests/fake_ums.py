"""A scriptable fake UMS REST server on loopback that records every request it gets."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: request line, raw path, headers, body."""

    method: str
    path: str
    requestline: str
    headers: Message  # case-insensitive: headers["content-type"]
    body: bytes
    json: Any  # the parsed body, or None when it was not JSON


@dataclass(frozen=True)
class Reply:
    """A scripted answer; with neither json nor body, the default success answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None  # raw body, sent as is
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (provokes read timeouts)
    drop: bool = False  # close the connection without answering
    reset: bool = False  # abort the connection (TCP RST) without answering


class FakeUms:
    """Fake UMS on 127.0.0.1 (HTTP/1.0, one connection per request), used as a context manager.

    Requests whose Basic auth matches no channel get HTTP 401 {"code": 4005}; the others
    are answered from the queued replies, then with success and a generated msgid.
    """

    def __init__(self, channels: Mapping[str, str]) -> None:
        self.channels = dict(channels)
        self.requests: list[Recorded] = []  # every request received, in arrival order
        self.port = 0
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeUms:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server, self.port = server, server.server_address[1]
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers waiting out a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
            self._server = None
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeUms:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next authenticated requests with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def error(self, code: int, message: str = "error", status: int = 400) -> None:
        """Queue a UMS failure envelope."""
        self.queue(Reply(status=status, json={"code": code, "message": message}))

    def paths(self) -> list[str]:
        """The raw paths of the requests received so far."""
        with self._lock:
            return [req.path for req in self.requests]

    def _record(self, req: Recorded, *, scripted: bool) -> Reply | None:
        with self._lock:
            self.requests.append(req)
            return self._script.popleft() if scripted and self._script else None

    def _success(self, req: Recorded) -> dict[str, Any]:
        if req.path.startswith("/v1/retract/"):
            return {"code": 0, "message": "success"}
        with self._lock:
            self._seq += 1
            seq = self._seq
        answer: dict[str, Any] = {
            "code": 0,
            "message": "success",
            "msgid": f"v:1t:{int(time.time())}p:{os.getpid()}n:{seq}",
        }
        option = req.json.get("option") if isinstance(req.json, dict) else None
        if isinstance(option, dict) and "sendno" in option:
            answer["sendno"] = option["sendno"]
        return answer

    def _authorized(self, header: str | None) -> bool:
        if header is None:
            return False
        got = header.encode("latin-1")  # http.server decodes headers as latin-1
        for key, secret in self.channels.items():
            expected = b"Basic " + base64.b64encode(f"{key}:{secret}".encode())
            if hmac.compare_digest(got, expected):
                return True
        return False


def _handler_for(fake: FakeUms) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            req = Recorded(self.command, self.path, self.requestline, self.headers, body, parsed)
            if not fake._authorized(self.headers.get("Authorization")):
                fake._record(req, scripted=False)  # a refused request leaves the script alone
                self._answer(Reply(401, {"code": 4005, "message": "auth failed"}))
                return
            reply = fake._record(req, scripted=True) or Reply()
            if reply.delay and fake._stopping.wait(reply.delay):
                return  # the server is stopping
            if reply.reset:
                # SO_LINGER 0 makes the close send RST instead of FIN; the socket is
                # really closed when rfile is, in finish().
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
                self.close_connection = True
                return
            if reply.drop:
                self.close_connection = True
                return
            if reply.json is None and reply.body is None:
                reply = Reply(reply.status, fake._success(req))
            self._answer(reply)

        def _answer(self, reply: Reply) -> None:
            payload = reply.body if reply.body is not None else json.dumps(reply.json).encode()
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
