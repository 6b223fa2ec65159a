"""Logs as JSON, one object a line, on stdout: request ids and masking.

Every line has ``ts``, ``level``, ``logger`` and ``message``; a line logged while a
request is answered carries its ``request_id`` too, and the one line per request
(``receiver.web.observe``) its fields. What is logged is chosen field by field: never a
header, a body, a query string, a token or an SQL parameter.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from flask import Flask, g, has_request_context, request

# A request id from the client is taken when it looks like one (a UUID, a proxy's
# trace id); anything else could forge log lines or carry personal data.
_SANE_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The attribute of a log record holding fields to add to its line.
FIELDS: Final = "umstrack_fields"


class RouteLoggingFlask(Flask):
    """A Flask app whose line for an unhandled error names the route (its URL rule) and
    not the path, which may hold a recipient (``/api/recipients/<phone>/events``)."""

    def log_exception(self, exc_info: Any) -> None:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        self.logger.error("Exception on %s [%s]", route, request.method, exc_info=exc_info)


def request_id(given: str | None) -> str:
    """The client's ``X-Request-ID`` when it is sane, else a new one."""
    if given is not None and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def mask(value: str) -> str:
    """Personal data (a phone number, an e-mail address) cut to its first 3 characters."""
    return value[:3] + "***"


class JsonFormatter(logging.Formatter):
    """One JSON object per log record."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if has_request_context() and "request_id" in g:
            line["request_id"] = g.request_id
        line["message"] = record.getMessage()
        line.update(getattr(record, FIELDS, None) or {})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def log_to_stdout() -> None:
    """Log JSON lines at INFO to stdout, unless logging is set up already (a command,
    a test runner)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
