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


def _is_unavailable(exc: DBAPIError) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated


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
        if not _is_unavailable(exc):
            raise exc
        log.warning("database unavailable: %s", exc.orig)
        return error_response(
            503,
            "database_unavailable",
            "The database is unavailable; nothing was stored. Retry later.",
            {"Retry-After": "5"},
        )
