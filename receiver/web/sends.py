"""Sending through this service over HTTP: ``POST /api/messages``."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from sender.errors import InvalidMessageError, ProviderRefusedError, UnknownOutcomeError

from ..config import ConfigError
from ..errors import ApiError
from ..openapi import TOKEN_UNAUTHORIZED, Body, Reply, documented
from ..sending.idempotency import (
    MAX_KEY_CHARS,
    Claim,
    KeyReusedError,
    KeyTakenError,
    key_problem,
    remember,
    replay,
)
from ..sending.outcome import SendFailedError, UmsOutcome
from ..sending.request import SendRequest, parse_request
from ..sending.ums import UmsSender
from .common import require_token

bp = Blueprint("sends", __name__, url_prefix="/api")
bp.before_request(require_token)


class UmsAnswer(BaseModel):
    """UMS's answer to the request that failed."""

    code: int | None = Field(description="UMS's business code; null: no UMS envelope.")
    message: str
    http_status: int | None


class SendErrorAnswer(BaseModel):
    """The error shape, with what is known of the send."""

    error: str = Field(description="Short code.")
    message: str = Field(description="Human sentence.")
    field: str | None = Field(None, description="The field at fault (invalid_message).")
    code: int | None = Field(None, description="The business code UMS would answer.")
    ums: UmsAnswer | None = None
    sendno: str | None = None
    sent: UmsOutcome | None = Field(None, description="The requests that went out before.")
    send_id: str | None = Field(None, description="idempotency_key_in_flight: its send.")


IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


@bp.post("/messages")
@documented(
    operation_id="sendMessage",
    summary="Send a UMS message through this service",
    description="Validates the message by every rule of the UMS message format, splits an "
    "audience over 1000 ids (or personalised contents) into several requests, fills in "
    "callback.url (PUBLIC_URL + /callbacks/ums) and the tracking param umstrack_send, "
    "records every request before it leaves, sends, and completes each record with UMS's "
    "answer. With an Idempotency-Key, a retry of the same body gets the first answer "
    "again and sends nothing.",
    tag="messages",
    security="bearerToken",
    body=Body(model=SendRequest),
    parameters=(
        {
            "name": IDEMPOTENCY_KEY,
            "in": "header",
            "required": False,
            "description": "A key of the caller's (1 to 255 printable ASCII characters, "
            "e.g. a UUID): the same key with the same body answers what the first request "
            "answered (header Idempotent-Replayed: true) and never sends again; with "
            "another body, 409.",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
        },
    ),
    replies={
        201: Reply("Sent; one msgid per request.", UmsOutcome, headers=(REPLAYED,)),
        400: Reply(
            "Not JSON (error `bad_request`), a bad Idempotency-Key (`invalid_parameter`), "
            "or a rule of the message format broken (error `invalid_message`, with `field` "
            "and the UMS business `code` UMS would answer); nothing was sent.",
            SendErrorAnswer,
        ),
        401: TOKEN_UNAUTHORIZED,
        409: Reply(
            "The Idempotency-Key was used with another body (error "
            "`idempotency_key_reused`), or the send it started is still in flight or its "
            "outcome is unknown (`idempotency_key_in_flight`, with its `send_id`); "
            "nothing was sent.",
            SendErrorAnswer,
        ),
        502: Reply(
            "UMS refused a request (error `ums_error`, with UMS's `code` and `message` in "
            "`ums`) or could not be reached (`ums_unreachable`); `sent` lists the requests "
            "that went out before it.",
            SendErrorAnswer,
            headers=(REPLAYED,),
        ),
        503: Reply(
            "No UMS channel is configured (error `not_configured`), or the database is "
            "unavailable (`database_unavailable`); nothing was sent.",
            SendErrorAnswer,
        ),
        504: Reply(
            "No answer from UMS after the request left (error `unknown_outcome`): it may "
            "or may not have been sent, so it was not retried.",
            SendErrorAnswer,
            headers=(REPLAYED,),
        ),
    },
)
def send() -> Response:
    """Send a UMS message through this service (validated, recorded, sent, completed)."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_request", "The body must be a JSON object: a UMS message.")
    claim = _claim(body)
    engine = current_app.extensions["umstrack.engine"]
    if claim is not None and (first := _first_answer(engine, claim)) is not None:
        return first
    sender: UmsSender = current_app.extensions["umstrack.sender"]
    try:
        outcome = sender.send(parse_request(body), claim=claim)
    except InvalidMessageError as exc:
        details = {"field": exc.field, "code": exc.code}
        raise ApiError(400, "invalid_message", str(exc), details=details) from None
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"Cannot send: {exc}.") from None
    except KeyTakenError:  # another request with this key got there first
        assert claim is not None
        first = _first_answer(engine, claim)
        assert first is not None, "a claimed key is never released"
        return first
    except SendFailedError as exc:
        error = _send_failed(exc)
        status, answered = (
            error.status,
            {**error.details, "error": error.error, "message": error.message},
        )
    else:
        status, answered = 201, outcome.linked(request.host_url).model_dump(mode="json")
    if claim is not None:
        remember(engine, claim, status=status, answer=answered)
    return Response(json.dumps(answered), status=status, mimetype="application/json")


def _claim(body: Any) -> Claim | None:
    """The request's Idempotency-Key claim, or None without the header."""
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is None:
        return None
    if problem := key_problem(key):
        raise ApiError(400, "invalid_parameter", f"The {IDEMPOTENCY_KEY} header {problem}.")
    return Claim.of(key, body)


def _first_answer(engine: Engine, claim: Claim) -> Response | None:
    """The answer the key's first request gave, or None for a new key. While the first
    request is in flight, waits a while for its answer, then says so (409)."""
    try:
        first = replay(engine, claim)
    except KeyReusedError:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"This {IDEMPOTENCY_KEY} was used with another body; nothing was sent.",
        ) from None
    if first is None:
        return None
    if first.status is None or first.answer is None:
        raise ApiError(
            409,
            "idempotency_key_in_flight",
            f"The send this {IDEMPOTENCY_KEY} started ({first.send_id}) is still in flight, "
            "or its outcome is unknown; it is never sent twice. Its requests are at "
            f"/api/messages?send_id={first.send_id}.",
            details={"send_id": first.send_id},
        )
    response = Response(json.dumps(first.answer), status=first.status, mimetype="application/json")
    response.headers[REPLAYED] = "true"
    return response


def _send_failed(failure: SendFailedError) -> ApiError:
    """502 with UMS's code and message; 504 when UMS may or may not have sent it."""
    error = failure.error
    details: dict[str, Any] = {"sent": failure.outcome.model_dump(mode="json")}
    if isinstance(error, ProviderRefusedError):
        details["ums"] = {
            "code": error.code,
            "message": error.message,
            "http_status": error.http_status,
        }
        return ApiError(502, "ums_error", f"UMS refused the send: {error}", details=details)
    if isinstance(error, UnknownOutcomeError):
        details["sendno"] = error.sendno
        return ApiError(504, "unknown_outcome", f"No answer from UMS: {error}", details=details)
    return ApiError(502, "ums_unreachable", f"UMS could not be reached: {error}", details=details)
