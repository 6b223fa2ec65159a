"""What the fake provider servers share: a JSON API on a free loopback port that records
every request it gets and answers from a script of replies, then by its own rules."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar


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
    """A scripted answer; with neither json nor body, the server's default answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None  # raw body, sent as is
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (provokes read timeouts)
    drop: bool = False  # close the connection without answering
    reset: bool = False  # abort the connection (TCP RST) without answering
    # Called once the request is recorded, before the answer leaves (e.g. to take the
    # database away just as the provider accepts a send).
    before: Callable[[], None] | None = None


def recorded(handler: BaseHTTPRequestHandler, body: bytes, parsed: Any) -> Recorded:
    """The record of a request as it arrived."""
    return Recorded(
        handler.command, handler.path, handler.requestline, handler.headers, body, parsed
    )


R = TypeVar("R", bound=Recorded)


class FakeServer(Generic[R]):
    """Base of the fakes: on 127.0.0.1 (HTTP/1.0, one connection per request), used as a
    context manager. Subclasses say what they record of a request (:meth:`record`) and
    how they answer it (:meth:`reply_to`)."""

    def __init__(self) -> None:
        self.requests: list[R] = []  # every request received, in arrival order
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

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def queue(self, *replies: Reply) -> None:
        """Answer the next accepted requests with these replies, in order."""
        with self._lock:
            self._script.extend(replies)

    def paths(self) -> list[str]:
        """The raw paths of the requests received so far."""
        with self._lock:
            return [req.path for req in self.requests]

    def record(self, handler: BaseHTTPRequestHandler, body: bytes, parsed: Any) -> R:
        """What is kept of a request as it arrived."""
        raise NotImplementedError

    def reply_to(self, req: R) -> Reply:
        """The answer to one request, which it records with :meth:`_take`."""
        raise NotImplementedError

    def _take(self, req: R, *, scripted: bool) -> Reply | None:
        """Record a request; for one the script applies to, its next reply, if any."""
        with self._lock:
            self.requests.append(req)
            return self._script.popleft() if scripted and self._script else None

    def _next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq


def _handler_for(fake: FakeServer[Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = None
            reply = fake.reply_to(fake.record(self, body, parsed))
            if reply.before is not None:
                reply.before()
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
