"""A scriptable fake UMS REST server on loopback that records every request it gets."""

from __future__ import annotations

import dataclasses
import hmac
import os
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fake_server import FakeServer, Recorded, Reply, recorded

__all__ = ["FakeUms", "Recorded", "Reply"]
from tests.helpers import basic_auth


class FakeUms(FakeServer[Recorded]):
    """Fake UMS on 127.0.0.1 (HTTP/1.0, one connection per request), used as a context manager.

    Requests whose Basic auth matches no channel get HTTP 401 {"code": 4005}; the others
    are answered from the queued replies, then with success and a generated msgid.
    """

    def __init__(self, channels: Mapping[str, str]) -> None:
        super().__init__()
        self.channels = dict(channels)

    def error(self, code: int, message: str = "error", status: int = 400) -> None:
        """Queue a UMS failure envelope."""
        self.queue(Reply(status=status, json={"code": code, "message": message}))

    def record(self, handler: BaseHTTPRequestHandler, body: bytes, parsed: Any) -> Recorded:
        return recorded(handler, body, parsed)

    def reply_to(self, req: Recorded) -> Reply:
        if not self._authorized(req.headers.get("Authorization")):
            self._take(req, scripted=False)  # a refused request leaves the script alone
            return Reply(401, {"code": 4005, "message": "auth failed"})
        reply = self._take(req, scripted=True) or Reply()
        if reply.json is None and reply.body is None and not (reply.drop or reply.reset):
            reply = dataclasses.replace(reply, json=self._success(req))
        return reply

    def _success(self, req: Recorded) -> dict[str, Any]:
        if req.path.startswith("/v1/retract/"):
            return {"code": 0, "message": "success"}
        answer: dict[str, Any] = {
            "code": 0,
            "message": "success",
            "msgid": f"v:1t:{int(time.time())}p:{os.getpid()}n:{self._next_seq()}",
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
            expected = basic_auth(key, secret)["Authorization"].encode()
            if hmac.compare_digest(got, expected):
                return True
        return False
