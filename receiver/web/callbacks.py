"""Callback intake blueprint: the URL UMS verifies and posts status records to."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import NoReturn

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from .. import metrics
from ..auth import AuthError, ChannelAuth
from ..db import write_session
from ..errors import ApiError
from ..intake import check_batch, quarantine, store_batch_counted
from ..openapi import CHANNEL_UNAUTHORIZED, DATABASE_UNAVAILABLE, Body, Reply, documented
from ..schemas.bounds import MAX_RECORDS
from ..schemas.records import BatchResult, CallbackRecord
from .body import read_body
from .common import answer
from .observe import note

bp = Blueprint("callbacks", __name__)
log = logging.getLogger(__name__)
_RECORD = {"$ref": "#/components/schemas/CallbackRecord"}


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
@documented(
    operation_id="verifyCallbackUrl",
    summary="UMS console URL check: echo echostr back",
    tag="callbacks",
    security="umsChannel",
    parameters=(
        {
            "name": "echostr",
            "in": "query",
            "required": True,
            "description": "Random string from UMS, answered back verbatim.",
            "schema": {"type": "string"},
        },
    ),
    replies={
        200: Reply("The echostr value, exactly.", None, "text/plain", {"type": "string"}),
        400: Reply("No echostr query parameter (error `missing_echostr`)."),
        401: CHANNEL_UNAUTHORIZED,
    },
)
def verify() -> Response:
    """UMS console URL check: echo ``echostr`` back as plain text."""
    _authenticated_channel()
    echostr = request.args.get("echostr")
    if echostr is None:
        raise ApiError(400, "missing_echostr", "Query parameter echostr is required.")
    return Response(echostr, mimetype="text/plain")


@bp.post("/callbacks/ums")
@documented(
    operation_id="receiveCallbacks",
    summary="Take in a batch of UMS status records",
    description="Authentication is checked before the body is read. Valid records are "
    "stored; unusable ones (no msgid, type not 0-8, wrong field types, a channelkey other "
    "than the authenticated one, ...) are kept in quarantine with the reason, never "
    "dropped, and the rest of the batch is stored. A record delivered again is counted "
    "as a duplicate and not stored twice. Records for msgids this service never sent are "
    "stored too.",
    tag="callbacks",
    security="umsChannel",
    body=Body(
        f"A JSON array of at most {MAX_RECORDS} records (UMS sends at most 100); a single "
        "record object too.",
        schema={"oneOf": [{"type": "array", "items": _RECORD, "maxItems": MAX_RECORDS}, _RECORD]},
        uses=(CallbackRecord,),
    ),
    replies={
        200: Reply("The batch was handled.", BatchResult),
        400: Reply(
            "The body is not JSON, neither an array nor an object, or an array of more "
            f"than {MAX_RECORDS} records (error `bad_request`); the raw body was kept in "
            "quarantine, once."
        ),
        401: CHANNEL_UNAUTHORIZED,
        413: Reply(
            "The body is over the size limit (MAX_BODY_BYTES, default 1 MiB; error "
            "`request_entity_too_large`)."
        ),
        503: DATABASE_UNAVAILABLE,
    },
)
def receive() -> Response:
    """Take in a batch of status records."""
    channelkey = _authenticated_channel()
    note(channelkey=channelkey)
    body = _read_body()
    try:
        payload = read_body(body)
    except ValueError as exc:
        _reject_body(channelkey, body, f"body is not JSON: {exc}")
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list):
        _reject_body(channelkey, body, "body is neither a JSON array nor an object")
    if len(payload) > MAX_RECORDS:
        # No UMS batch holds that many (UMS sends at most 100): kept once, whole.
        reason = f"a batch of {len(payload)} records is over the {MAX_RECORDS} a batch may hold"
        _reject_body(channelkey, body, reason)

    # Checked before the transaction: a writer's turn is not spent on computation.
    batch = check_batch(payload, channelkey=channelkey)
    received = metrics.count_received(
        channelkey=channelkey,
        records=payload,
        usable=(record for _, record in batch.good),
        at=datetime.now(UTC),
    )
    session = write_session()
    stored = store_batch_counted(session=session, channelkey=channelkey, batch=batch)
    session.commit()
    metrics.count_outcome(
        channelkey=channelkey,
        received=received,
        stored=stored.stored,
        quarantined=stored.quarantined,
    )
    result = stored.result
    note(**result.model_dump())
    if result.quarantined:
        log.warning("channel %s: %d record(s) quarantined", channelkey, result.quarantined)
    return answer(result)


def _read_body() -> bytes:
    """The body, refused (413) past MAX_BODY_BYTES: by its Content-Length before it is
    read, or, sent chunked, as soon as it grows past the limit."""
    limit: int = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None or not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=False)
    # Werkzeug would stop a chunked body at the limit without a word: read one byte more.
    body: bytes = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def _reject_body(channelkey: str, body: bytes, reason: str) -> NoReturn:
    session = write_session()
    quarantine(session=session, channelkey=channelkey, items=[(reason, _as_text(body))])
    session.commit()
    raise ApiError(400, "bad_request", f"{reason}; the body was kept in quarantine.")


def _as_text(body: bytes) -> str:
    # Undecodable bytes become \xNN escapes, and NUL (which PostgreSQL text
    # cannot hold) too: the stored text still says exactly what arrived.
    return body.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")
