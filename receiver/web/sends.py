"""Sending through this service over HTTP: ``POST /api/messages``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import BaseModel, Field

from sender.errors import InvalidMessageError, ProviderRefusedError, UnknownOutcomeError

from ..config import ConfigError
from ..errors import ApiError
from ..openapi import TOKEN_UNAUTHORIZED, Body, Reply, documented
from ..sending.outcome import SendFailedError, UmsOutcome
from ..sending.request import SendRequest, parse_request
from ..sending.ums import UmsSender
from .common import answer, require_token

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


@bp.post("/messages")
@documented(
    operation_id="sendMessage",
    summary="Send a UMS message through this service",
    description="Validates the message by every rule of the UMS message format, splits an "
    "audience over 1000 ids (or personalised contents) into several requests, fills in "
    "callback.url (PUBLIC_URL + /callbacks/ums) and the tracking param umstrack_send, "
    "sends, and records every request, failures too.",
    tag="messages",
    security="bearerToken",
    body=Body(model=SendRequest),
    replies={
        201: Reply("Sent; one msgid per request.", UmsOutcome),
        400: Reply(
            "Not JSON (error `bad_request`), or a rule of the message format broken (error "
            "`invalid_message`, with `field` and the UMS business `code` UMS would "
            "answer); nothing was sent.",
            SendErrorAnswer,
        ),
        401: TOKEN_UNAUTHORIZED,
        502: Reply(
            "UMS refused a request (error `ums_error`, with UMS's `code` and `message` in "
            "`ums`) or could not be reached (`ums_unreachable`); `sent` lists the requests "
            "that went out before it.",
            SendErrorAnswer,
        ),
        503: Reply("No UMS channel is configured (error `not_configured`).", SendErrorAnswer),
        504: Reply(
            "No answer from UMS after the request left (error `unknown_outcome`): it may "
            "or may not have been sent, so it was not retried.",
            SendErrorAnswer,
        ),
    },
)
def send() -> Response:
    """Send a UMS message through this service (validated, split, recorded)."""
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "bad_request", "The body must be a JSON object: a UMS message.")
    sender: UmsSender = current_app.extensions["umstrack.sender"]
    try:
        outcome = sender.send(parse_request(body))
    except InvalidMessageError as exc:
        details = {"field": exc.field, "code": exc.code}
        raise ApiError(400, "invalid_message", str(exc), details=details) from None
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"Cannot send: {exc}.") from None
    except SendFailedError as exc:
        raise _send_failed(exc) from None
    return answer(outcome.linked(request.host_url), 201)


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
