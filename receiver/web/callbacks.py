"""Callback intake blueprint: the URL UMS verifies and posts status records to."""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import NoReturn

from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from .. import metrics
from ..auth import AuthError, ChannelAuth
from ..db import get_engine, get_session, write_session
from ..errors import ApiError, database_unreachable, safe_description
from ..intake import BadBody, batch_of, body_text, check_batch, quarantine, store_batch_counted
from ..openapi import CHANNEL_UNAUTHORIZED, Body, Reply, documented
from ..schemas.bounds import MAX_RECORDS
from ..schemas.records import CallbackRecord, IntakeResult, SpooledResult
from ..spool import Spool, SpoolFull
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
        200: Reply(
            "The batch was handled; or, with the database unavailable (PostgreSQL), kept "
            "on disk in the outage spool and stored once the spool drains "
            '(`{"received": n, "spooled": n}`).',
            IntakeResult,
        ),
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
        503: Reply(
            "The database is unavailable and the batch could not be spooled: SQLite (no "
            "spool), `SPOOL_DIR=off`, or the spool full (error `database_unavailable`); "
            "nothing was half-written, so UMS's retry is safe.",
            headers=("Retry-After",),
        ),
    },
)
def receive() -> Response:
    """Take in a batch of status records."""
    channelkey = _authenticated_channel()
    note(channelkey=channelkey)
    body = _read_body()
    received_at = datetime.now(UTC)
    try:
        payload = batch_of(body)
    except BadBody as exc:
        _reject_body(channelkey, body, str(exc), received_at)

    # Checked before the transaction: a writer's turn is not spent on computation.
    sqlite = get_engine().dialect.name == "sqlite"
    batch = check_batch(payload, channelkey=channelkey, prepare_rows=sqlite)
    received = metrics.count_received(
        channelkey=channelkey,
        records=payload,
        usable=(record for _, record in batch.good),
        at=received_at,
    )
    try:
        session = write_session()
        stored = store_batch_counted(
            session=session, channelkey=channelkey, batch=batch, received_at=received_at
        )
        session.commit()
    except DBAPIError as exc:
        _spool(exc, channelkey=channelkey, body=body, received_at=received_at)
        metrics.count_spooled(channelkey=channelkey, received=received)
        note(received=batch.received, spooled=batch.received)
        return answer(SpooledResult(received=batch.received, spooled=batch.received))
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


def _spool(
    exc: DBAPIError,
    *,
    channelkey: str,
    body: bytes,
    received_at: datetime,
    reason: str | None = None,
) -> None:
    """Keep a batch the database could not take in the outage spool, durably; re-raises
    ``exc`` (answered 503) when the database failed for another reason than being
    unavailable, when there is no spool (SQLite), or when the spool is full."""
    spool: Spool | None = current_app.extensions["umstrack.spool"]
    if spool is None or not database_unreachable(exc):
        raise exc
    with contextlib.suppress(DBAPIError):
        get_session().rollback()
    metrics.count_database_error(where="request", unavailable=True)
    try:
        spool.append(channelkey=channelkey, received_at=received_at, body=body, reason=reason)
    except SpoolFull as full:
        log.error(
            "database unavailable (%s) and the spool refused: %s", safe_description(exc), full
        )
        raise ApiError(
            503,
            "database_unavailable",
            f"The database is unavailable and the outage spool cannot take the batch: {full}. "
            "Nothing was stored; retry later.",
            {"Retry-After": "5"},
        ) from None
    log.warning(
        "database unavailable (%s): %d bytes from channel %s kept in the outage spool",
        safe_description(exc),
        len(body),
        channelkey,
    )


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


def _reject_body(channelkey: str, body: bytes, reason: str, received_at: datetime) -> NoReturn:
    try:
        session = write_session()
        quarantine(
            session=session,
            channelkey=channelkey,
            items=[(reason, body_text(body))],
            received_at=received_at,
        )
        session.commit()
    except DBAPIError as exc:
        # Kept in the spool with its reason, and quarantined when the spool drains.
        _spool(exc, channelkey=channelkey, body=body, received_at=received_at, reason=reason)
    raise ApiError(400, "bad_request", f"{reason}; the body was kept in quarantine.")
