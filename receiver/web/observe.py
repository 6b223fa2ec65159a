"""Every request: an id (``X-Request-ID``, taken or made, and echoed), one JSON log line
and its metrics (count and latency by route).

Registered on the API app and on the web UI's app alike (:func:`init_app`). A view
adds its own facts to the line with :func:`note` (the callback intake: its channelkey
and counts).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Final

from flask import Flask, Response, g, request

from .. import metrics
from ..logs import FIELDS, mask, request_id

log = logging.getLogger("umstrack.request")
REQUEST_ID: Final = "X-Request-ID"
# Path parameters that hold personal data: masked in the logged path.
_PERSONAL: Final = ("recipient",)
# A request no route matched (404, 405): one label for all, whatever the path was.
UNMATCHED: Final = "unmatched"


def init_app(app: Flask) -> None:
    """Give ``app``'s requests an id, a log line and metrics."""
    app.before_request(_start)
    app.after_request(_finish)


def note(**fields: Any) -> None:
    """Add facts to this request's log line."""
    g.setdefault("log_fields", {}).update(fields)


def _start() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id(request.headers.get(REQUEST_ID))


def _finish(response: Response) -> Response:
    started: float = g.get("request_started", time.perf_counter())
    seconds = time.perf_counter() - started
    rid = g.get("request_id") or request_id(request.headers.get(REQUEST_ID))
    response.headers[REQUEST_ID] = rid
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
    metrics.count_request(
        route=route, method=request.method, status=response.status_code, seconds=seconds
    )
    fields = {
        "request_id": rid,
        "method": request.method,
        "route": route,
        "path": _logged_path(),
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 3),
        "remote": request.remote_addr,
        "pid": os.getpid(),
        **g.get("log_fields", {}),
    }
    log.info("%s %s %d", request.method, route, response.status_code, extra={FIELDS: fields})
    return response


def _logged_path() -> str:
    """The path without its query string (which may hold tokens or personal data), the
    personal parameters masked."""
    path = request.path
    for name in _PERSONAL:
        value = (request.view_args or {}).get(name)
        if isinstance(value, str) and value:
            path = path.replace(value, mask(value))
    return path
