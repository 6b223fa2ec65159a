"""Withdrawing through this service over HTTP: ``POST /api/messages/<msgid>/withdraw``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from pydantic import BaseModel, Field

from ..config import ConfigError
from ..errors import ApiError
from ..openapi import MESSAGE_NOT_FOUND, TOKEN_UNAUTHORIZED, Reply, documented
from ..sending.withdraw import (
    AlreadyWithdrawnError,
    MessageNotFoundError,
    NotWithdrawableError,
    Withdrawer,
    WithdrawError,
    WithdrawOutcome,
)
from .common import answer, require_token
from .sends import UmsAnswer

bp = Blueprint("withdraw", __name__, url_prefix="/api")
bp.before_request(require_token)


class WithdrawErrorAnswer(BaseModel):
    """The error shape, with what is known of the withdraw."""

    error: str = Field(description="Short code.")
    message: str = Field(description="Human sentence.")
    code: int | None = Field(
        None, description="UMS's business code 1015055 (already withdrawn) on a 409."
    )
    ums: UmsAnswer | None = Field(None, description="UMS's answer, when it refused.")
    withdraw: WithdrawOutcome | None = Field(
        None, description="The withdraw as recorded (on a 409: the one that came before)."
    )


# Each error of a withdraw, by class: the status it answers with.
_STATUS: dict[type[WithdrawError], int] = {
    MessageNotFoundError: 404,
    NotWithdrawableError: 400,
    AlreadyWithdrawnError: 409,
}


@bp.post("/messages/<msgid>/withdraw")
@documented(
    operation_id="withdrawMessage",
    summary="Withdraw a UMS message through this service",
    description="Withdraws a message sent within the last 24 hours (UMS: POST "
    "/v1/retract/{msgid}) through the channel that sent it. The withdraw is recorded "
    "before it leaves and completed with UMS's answer, so of two withdraws of one msgid "
    "one request reaches UMS, and one whose outcome is unknown is never sent again. Each "
    "target's outcome arrives later as withdrawn / withdraw_failed events; the summary "
    "shows the withdraw under `withdraw`.",
    tag="messages",
    security="bearerToken",
    replies={
        200: Reply(
            "UMS accepted the withdraw (state `accepted`, UMS's `code` and `message`); "
            "`recorded` is false only when the database failed after UMS answered.",
            WithdrawOutcome,
        ),
        400: Reply(
            "The msgid names nothing UMS accepted (error `not_withdrawable`: a send that "
            "failed, a RongCloud message); nothing was sent.",
            WithdrawErrorAnswer,
        ),
        401: TOKEN_UNAUTHORIZED,
        404: MESSAGE_NOT_FOUND,
        409: Reply(
            "Already withdrawn (error `already_withdrawn`: through this service, or UMS "
            "answered 1015055, then with `ums`), a withdraw is in flight "
            "(`withdraw_in_flight`) or its outcome is unknown (`withdraw_outcome_unknown`); "
            "`code` is 1015055, and no (further) request was sent.",
            WithdrawErrorAnswer,
        ),
        502: Reply(
            "UMS refused the withdraw (error `ums_error`, with UMS's `code` and `message` "
            "in `ums`; recorded as refused, so a later withdraw may try again) or could not "
            "be reached (`ums_unreachable`: it never left, recorded as not_sent).",
            WithdrawErrorAnswer,
        ),
        503: Reply(
            "The message's channel is not configured (error `not_configured`), or the "
            "database is unavailable (`database_unavailable`); nothing was sent.",
            WithdrawErrorAnswer,
        ),
        504: Reply(
            "No answer from UMS after the request left (error `unknown_outcome`): it may "
            "have been withdrawn, so it is recorded as unknown and never sent again.",
            WithdrawErrorAnswer,
        ),
    },
)
def withdraw(msgid: str) -> Response:
    """Withdraw a UMS message through this service (recorded, sent, completed)."""
    withdrawer: Withdrawer = current_app.extensions["umstrack.withdrawer"]
    try:
        outcome = withdrawer.withdraw(msgid)
    except ConfigError as exc:
        raise ApiError(503, "not_configured", f"Cannot withdraw: {exc}.") from None
    except WithdrawError as exc:
        status = _status(exc)
        raise ApiError(status, exc.error, exc.message, details=exc.details()) from None
    return answer(outcome)


def _status(error: WithdrawError) -> int:
    """404, 400, 409; 504 when UMS may have withdrawn it; else 502 (refused, unreachable)."""
    for kind, status in _STATUS.items():
        if isinstance(error, kind):
            return status
    return 504 if error.error == "unknown_outcome" else 502
