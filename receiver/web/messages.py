"""Read API blueprint: message summaries, timelines, targets and lists."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sender.errors import InvalidMessageError, ProviderRefusedError, UnknownOutcomeError
from sender.ums.protocol import STATUSES

from .. import read as queries
from ..config import ConfigError, Settings
from ..db import get_session
from ..errors import ApiError
from ..read import DEFAULT_LIMIT, MAX_LIMIT, CursorError
from ..sending.outcome import SendFailedError
from ..sending.request import parse_request
from ..sending.ums import UmsSender

bp = Blueprint("api", __name__, url_prefix="/api")

# A time, then an offset whose "+" a query string decoded as a space.
_UNENCODED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` against the configured tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens]

    def allows(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = hashlib.sha256(token.strip().encode()).digest()
        # No early exit: the time taken does not say which token came close.
        return sum(hmac.compare_digest(given, d) for d in self._digests) > 0


@bp.before_request
def _require_token() -> None:
    # Timelines carry phone numbers, emails and user ids: nobody reads anonymously.
    settings: Settings = current_app.extensions["umstrack.settings"]
    auth: TokenAuth = current_app.extensions["umstrack.token_auth"]
    if not auth.allows(request.headers.get("Authorization")):
        reason = (
            "a valid bearer token is required"
            if settings.api_tokens
            else "no API tokens are configured (API_TOKENS), so the API is closed"
        )
        raise ApiError(401, "unauthorized", f"Unauthorized: {reason}.",
                       {"WWW-Authenticate": 'Bearer realm="umstrack"'})  # fmt: skip


# msgids contain ":" (v:1t:1603707455p:27133n:2); the path converter takes any
# text up to the next "/".
@bp.get("/messages/<msgid>")
def message(msgid: str) -> Response:
    """One message's summary."""
    summary = queries.message_summary(session=get_session(), msgid=msgid)
    if summary is None:
        raise _unknown(msgid)
    return jsonify(summary)


@bp.get("/messages/<msgid>/timeline")
def timeline(msgid: str) -> Response:
    """One message's events in time order."""
    session = get_session()
    page = _paged(queries.timeline, session=session, msgid=msgid)
    if not page.items and not queries.message_known(session=session, msgid=msgid):
        raise _unknown(msgid)
    return jsonify(msgid=msgid, events=page.items, next_cursor=page.next_cursor)


@bp.get("/messages/<msgid>/targets")
def targets(msgid: str) -> Response:
    """The current status of each of one message's targets."""
    session = get_session()
    page = _paged(queries.targets, session=session, msgid=msgid, status=_status())
    if not page.items and not queries.message_known(session=session, msgid=msgid):
        raise _unknown(msgid)
    return jsonify(msgid=msgid, targets=page.items, next_cursor=page.next_cursor)


@bp.post("/messages")
def send() -> tuple[Response, int]:
    """Send a UMS message through this service (validated, split, recorded)."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_request", "The body must be a JSON object: a UMS message.")
    sender: UmsSender = current_app.extensions["umstrack.sender"]
    try:
        outcome = sender.send(parse_request(body))
    except InvalidMessageError as exc:
        raise ApiError(400, "invalid_message", str(exc),
                       details={"field": exc.field, "code": exc.code}) from None  # fmt: skip
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"Cannot send: {exc}.") from None
    except SendFailedError as exc:
        raise _send_failed(exc) from None
    return jsonify(outcome.linked(request.host_url).model_dump(mode="json")), 201


def _send_failed(failure: SendFailedError) -> ApiError:
    """502 with UMS's code and message; 504 when UMS may or may not have sent it."""
    error = failure.error
    details: dict[str, Any] = {"sent": failure.outcome.model_dump(mode="json")}
    if isinstance(error, ProviderRefusedError):
        details["ums"] = {"code": error.code, "message": error.message,
                          "http_status": error.http_status}  # fmt: skip
        return ApiError(502, "ums_error", f"UMS refused the send: {error}", details=details)
    if isinstance(error, UnknownOutcomeError):
        details["sendno"] = error.sendno
        return ApiError(504, "unknown_outcome", f"No answer from UMS: {error}", details=details)
    return ApiError(502, "ums_unreachable", f"UMS could not be reached: {error}", details=details)


@bp.get("/messages")
def messages() -> Response:
    """Message summaries, newest first, filtered."""
    params = {
        name.removeprefix("param."): value
        for name, value in request.args.items()
        if name.startswith("param.") and name != "param."
    }
    page = _paged(
        queries.list_messages,
        session=get_session(),
        sendno=request.args.get("sendno"),
        send_id=request.args.get("send_id"),
        status=_status(),
        since=_time("since"),
        until=_time("until"),
        params=params,
    )
    return jsonify(messages=page.items, next_cursor=page.next_cursor)


def _paged(list_fn: Any, **kwargs: Any) -> queries.Page:
    limit = _limit()
    try:
        page: queries.Page = list_fn(**kwargs, limit=limit, cursor=request.args.get("cursor"))
    except CursorError as exc:
        raise _bad("cursor", f"{exc}; pass back a next_cursor unchanged") from None
    return page


def _limit() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    # isascii: str.isdigit() also takes digits such as "²" that int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise _bad("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def _status() -> str | None:
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise _bad("status", f"unknown status {status!r}; one of {', '.join(STATUSES)}")
    return status


def _time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    # An offset written unencoded in a URL ("+08:00") arrives as " 08:00".
    raw = _UNENCODED_OFFSET.sub(r"\1+\2", raw)
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad(name, f"not an ISO 8601 time: {raw!r}") from None
    # A time without an offset is taken as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _unknown(msgid: str) -> ApiError:
    return ApiError(404, "not_found", f"No message {msgid!r} is known here.")


def _bad(parameter: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", f"{parameter}: {message}")
