"""The emulator's HTTP side: UMS's REST paths and the ``/_emulator/*`` inspection paths.

UMS's API (普通消息发送 v1, Ordinary message sending v1; 模板消息, Template messages;
撤回消息, Withdraw a message): ``POST /v1/sent``, ``/v1/broadcast``,
``/v1/template/sent``, ``/v1/template/broadcast`` and ``/v1/retract/{msgid}``, each
with ``Authorization: Basic base64(channelkey:mastersecret)`` (4005 when it is
wrong), a JSON body, and a ``{"code", "message"}`` answer (业务返回码, Business return
codes). Inspection, without auth: ``GET /_emulator/state`` (what was sent, what the
receivers answered), ``GET /_emulator/idle?timeout=S`` (waits until nothing is
pending) and ``GET /_emulator/records?msgid=M`` (the records made, in order).
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast
from urllib.parse import parse_qs, unquote

from ..errors import InvalidMessageError
from ..ums.protocol import (
    AUTH_FAILED,
    INVALID_PARAMETER,
    RETRACT_PATH,
    SEND_PATHS,
    SERVER_ERROR,
    SendKind,
)
from .config import MAX_IDLE_WAIT_SECONDS, MAX_REQUEST_BYTES

if TYPE_CHECKING:
    from .emulator import Emulator

log = logging.getLogger(__name__)

# An API answer: (HTTP status, JSON body).
Answer: TypeAlias = tuple[int, dict[str, Any]]

_KIND_BY_PATH: Final[dict[str, SendKind]] = {path: kind for kind, path in SEND_PATHS.items()}


def answer_api(
    emulator: Emulator, method: str, path: str, authorization: str | None, body: bytes
) -> Answer:
    """Answer one UMS API request as UMS would."""
    kind = _KIND_BY_PATH.get(path)
    retract = path.startswith(RETRACT_PATH) and len(path) > len(RETRACT_PATH)
    if kind is None and not retract:
        return 404, {"code": INVALID_PARAMETER, "message": f"no such API: {path}"}
    if method != "POST":
        return 405, {"code": INVALID_PARAMETER, "message": f"{path} takes POST"}
    channelkey = emulator.authenticate(authorization)
    if channelkey is None:
        return 401, {"code": AUTH_FAILED, "message": "authentication failed"}
    try:
        if kind is None:
            return emulator.withdraw(channelkey, unquote(path[len(RETRACT_PATH) :]))
        try:
            message = json.loads(body.decode("utf-8"))
        except ValueError:
            raise InvalidMessageError("body", "is not JSON") from None
        return emulator.send(channelkey, kind, message)
    except InvalidMessageError as exc:
        return 400, {"code": exc.code, "message": str(exc)}


class EmulatorServer(ThreadingHTTPServer):
    """The emulator's HTTP server: one thread per connection."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended badly", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server_version = "ums-emulator/1"

    @property
    def emulator(self) -> Emulator:
        return cast(EmulatorServer, self.server).emulator

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        args = parse_qs(query)
        if path == "/_emulator/state":
            self._answer(200, self.emulator.state())
        elif path == "/_emulator/idle":
            try:
                timeout = float(args.get("timeout", ["0"])[0])
            except ValueError:
                self._answer(400, {"error": "bad_timeout", "message": "timeout: not a number"})
                return
            idle = self.emulator.wait_idle(min(max(timeout, 0.0), MAX_IDLE_WAIT_SECONDS))
            self._answer(200, {"idle": idle, "pending": self.emulator.pending()})
        elif path == "/_emulator/records":
            msgid = args.get("msgid", [None])[0]
            self._answer(200, {"records": self.emulator.records(msgid)})
        else:
            self._api("GET", path, b"")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            self.close_connection = True
            self._answer(413, {"code": INVALID_PARAMETER, "message": "bad or too large body"})
            return
        # Read before answering: closing a socket with unread data resets the connection.
        body = self.rfile.read(length)
        self._api("POST", self.path.partition("?")[0], body)

    def _api(self, method: str, path: str, body: bytes) -> None:
        try:
            status, answer = answer_api(
                self.emulator, method, path, self.headers.get("Authorization"), body
            )
        except Exception:
            log.exception("UMS emulator: %s %s failed", method, path)
            status, answer = 500, {"code": SERVER_ERROR, "message": "server error"}
        self._answer(status, answer)

    def _answer(self, status: int, answer: Any) -> None:
        data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
