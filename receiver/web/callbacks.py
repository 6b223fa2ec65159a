"""Callback intake blueprint: the URL UMS verifies and posts status records to."""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, jsonify, request

from ..auth import AuthError, ChannelAuth
from ..db import write_session
from ..errors import ApiError
from ..intake import quarantine, record_batch

bp = Blueprint("callbacks", __name__)
log = logging.getLogger(__name__)


def _authenticated_channel() -> str:
    # Only the header is looked at: the body is not read before auth succeeds.
    auth: ChannelAuth = current_app.extensions["umstrack.channel_auth"]
    try:
        return auth.channel_for(request.headers.get("Authorization"))
    except AuthError as exc:
        raise ApiError(
            401,
            "unauthorized",
            f"UMS channel authentication failed: {exc}.",
            {"WWW-Authenticate": 'Basic realm="umstrack"'},
        ) from None


@bp.get("/callbacks/ums")
def verify() -> Response:
    """UMS console URL check: echo ``echostr`` back as plain text."""
    _authenticated_channel()
    echostr = request.args.get("echostr")
    if echostr is None:
        raise ApiError(400, "missing_echostr", "Query parameter echostr is required.")
    return Response(echostr, mimetype="text/plain")


@bp.post("/callbacks/ums")
def receive() -> Response:
    """Take in a batch of status records."""
    channelkey = _authenticated_channel()
    body = request.get_data(cache=False)  # over the size limit: 413
    try:
        payload = _loads(body)
    except ValueError as exc:
        _reject_body(channelkey, body, f"body is not JSON: {exc}")
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        _reject_body(channelkey, body, "body is neither a JSON array nor an object")

    session = write_session()
    result = record_batch(session=session, channelkey=channelkey, records=payload)
    session.commit()
    if result.quarantined:
        log.warning("channel %s: %d record(s) quarantined", channelkey, result.quarantined)
    return jsonify(result.as_dict())


def _reject_body(channelkey: str, body: bytes, reason: str) -> NoReturn:
    session = write_session()
    quarantine(session=session, channelkey=channelkey, items=[(reason, _as_text(body))])
    session.commit()
    raise ApiError(400, "bad_request", f"{reason}; the body was kept in quarantine.")


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _as_text(body: bytes) -> str:
    # Undecodable bytes become \xNN escapes, and NUL (which PostgreSQL text
    # cannot hold) too: the stored text still says exactly what arrived.
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
