"""One error shape for every JSON answer: {"error": code, "message": sentence}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A domain error with the HTTP status and short code it answers with."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.details = details or {}  # more fields beside error and message


def error_response(
    status: int,
    error: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    """A JSON error answer in the one shape (``details`` adds fields beside it)."""
    response = jsonify({**(details or {}), "error": error, "message": message})
    response.status_code = status
    response.headers.update(headers or {})
    return response


# SQLSTATEs that say the server cannot be reached or is restarting: class 08
# (connection exception), admin/crash shutdown and "cannot connect now" (57P01-57P03),
# too many connections (53300). Anything else (data, limits, programming) is not an
# outage, and a retry of the same request would fail the same way.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def database_unreachable(exc: DBAPIError) -> bool:
    """Whether a database error means the database cannot be reached (or is
    restarting), so that the same request may succeed later: the only 503."""
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:  # PostgreSQL said why
        return sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_STATES
    # No answer from a server (refused, lost, timed out), or SQLite's file busy or
    # unreadable: psycopg and sqlite3 raise OperationalError or InterfaceError.
    return isinstance(exc, OperationalError | InterfaceError) and not _is_limit(exc)


def _is_limit(exc: DBAPIError) -> bool:
    # SQLite reports some limits as OperationalError ("too many SQL variables").
    return "too many" in str(exc.orig) or "too big" in str(exc.orig)


def register(app: Flask) -> None:
    """Install the error handlers on ``app``."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.error, exc.message, exc.headers, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        # Keep what the exception says beyond the body, such as a 405's Allow.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, code, exc.description or exc.name, headers)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError) -> Response:
        if not database_unreachable(exc):
            raise exc
        log.warning("database unavailable: %s", exc.orig)
        return error_response(
            503,
            "database_unavailable",
            "The database is unavailable; nothing was stored. Retry later.",
            {"Retry-After": "5"},
        )
