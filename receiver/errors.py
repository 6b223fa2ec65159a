"""One error shape for every JSON answer: {"error": code, "message": sentence}."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from . import metrics

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


# SQLSTATE classes of a database that cannot serve now but may in a moment, so that
# UMS's retry of the same batch can succeed: 08 connection exception, 40 transaction
# rollback (serialization failure, deadlock), 53 insufficient resources (too many
# connections, disk full, out of memory), 57 operator intervention (admin or crash
# shutdown, cannot connect now, query canceled), 58 system error (I/O). Data (22),
# integrity (23), program limits (54) and programming errors (42) would fail again.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# SQLite's counterparts: another writer holds the file, or it cannot be read or written.
_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_CANTOPEN",
    "SQLITE_FULL",
    "SQLITE_PROTOCOL",
)


# PostgreSQL cancelled the statement: statement_timeout (or an administrator) stopped it.
QUERY_CANCELED = "57014"


class DatabaseError(Exception):
    """A database error that no retry would mend, described without the values."""


def safe_description(exc: DBAPIError) -> str:
    """What went wrong, without the values of the statement or the row: the driver's
    error class, PostgreSQL's SQLSTATE and its primary message (never its DETAIL)."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    kind = f"{type(exc).__name__}: {type(orig).__name__}"
    if primary is not None:
        return f"{kind} (SQLSTATE {getattr(orig, 'sqlstate', None)}): {primary}"
    # SQLite names the constraint, never the values; the statement's own parameters
    # are hidden by the engine (hide_parameters).
    return f"{kind}: {orig}"


def database_unreachable(exc: DBAPIError) -> bool:
    """Whether a database error means the database cannot be reached (or is
    restarting), so that the same request may succeed later: the only 503."""
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:  # PostgreSQL said why
        return sqlstate[:2] in _TRANSIENT_CLASSES
    sqlite_error = getattr(exc.orig, "sqlite_errorname", None)
    if sqlite_error:  # SQLite said why: the file busy, locked or unreadable
        return bool(sqlite_error.startswith(_SQLITE_TRANSIENT))
    # No answer from a server at all (refused, lost, timed out).
    return isinstance(exc, OperationalError | InterfaceError)


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
        unavailable = database_unreachable(exc)
        metrics.count_database_error(where="request", unavailable=unavailable)
        if not unavailable:
            # Logged as a 500 with its traceback, but without the values PostgreSQL's
            # message may quote (a duplicate key's phone number, a row's contents).
            raise DatabaseError(safe_description(exc)).with_traceback(exc.__traceback__) from None
        log.warning("database unavailable: %s", safe_description(exc))
        message = "The database is unavailable; nothing was stored. Retry later."
        if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED:
            message = (
                "The database did not finish in time (STATEMENT_TIMEOUT_MS); nothing was "
                "stored. Retry later."
            )
        return error_response(503, "database_unavailable", message, {"Retry-After": "5"})
