"""A scriptable fake RongCloud server API on loopback that checks signatures as RongCloud does."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_server import FakeServer, Recorded, Reply, recorded

__all__ = ["FakeRongCloud", "Reply", "Signed", "rongcloud_error"]

PUBLISH_TEMPLATE = "/message/private/publish_template.json"


@dataclass(frozen=True)
class Signed(Recorded):
    """A request as it arrived, and whether its signature was good."""

    signed: bool


def rongcloud_error(code: int, message: str, status: int) -> Reply:
    """A RongCloud failure envelope."""
    return Reply(status=status, json={"code": code, "errorMessage": message})


def _header(headers: Message, name: str) -> str | None:
    """A signing header in either of its forms (``Nonce`` or ``RC-Nonce``)."""
    value = headers.get(name)
    return value if value is not None else headers.get(f"RC-{name}")


class FakeRongCloud(FakeServer[Signed]):
    """Fake RongCloud on 127.0.0.1, used as a context manager.

    Every request must carry App-Key, Nonce, Timestamp and Signature =
    hex(SHA1(secret + nonce + timestamp)) for a known app (HTTP 401, code 1004
    otherwise); the publish_template body must be JSON with at most 1000 recipients and
    one values / pushContent entry each (HTTP 400, code 1002 otherwise). Signed requests
    are answered from the queued replies, then with {"code": 200, "messageUIDs": [...]}.
    """

    def __init__(self, apps: Mapping[str, str]) -> None:
        super().__init__()
        self.apps = dict(apps)

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

    def record(self, handler: BaseHTTPRequestHandler, body: bytes, parsed: Any) -> Signed:
        base = recorded(handler, body, parsed)
        return Signed(**vars(base), signed=self.signature_ok(handler.headers))

    def reply_to(self, req: Signed) -> Reply:
        reply = self._take(req, scripted=req.signed)
        if not req.signed:
            return rongcloud_error(1004, "signature error", 401)
        if reply is not None:
            return reply
        if req.path != PUBLISH_TEMPLATE:
            return rongcloud_error(404, f"no API at {req.path}", 404)
        content_type = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        problem = "Content-Type is not application/json"
        if content_type == "application/json":
            problem = _invalid(req.json) or ""
        if problem:
            return rongcloud_error(1002, problem, 400)
        seq = self._next_seq()
        return Reply(
            json={
                "code": 200,
                "messageUIDs": [
                    {"userId": user, "messageUID": f"FAKE-{seq:04d}-{i:04d}"}
                    for i, user in enumerate(req.json["toUserId"])
                ],
            }
        )


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
