"""A recipient's history: its events across all messages, newest first."""

from __future__ import annotations

from flask import Blueprint, Response

from .. import history
from ..db import get_session
from ..openapi import BAD_PARAMETER, DATABASE_UNAVAILABLE, TOKEN_UNAUTHORIZED, Reply, documented
from ..schemas.messages import RecipientEventPage
from ..schemas.queries import RecipientQuery
from .common import answer, paged, query, require_token

bp = Blueprint("recipients", __name__, url_prefix="/api")
bp.before_request(require_token)


@bp.get("/recipients/<recipient>/events")
@documented(
    operation_id="listRecipientEvents",
    summary="One recipient's events across all messages, newest first",
    description="The events whose userid or sender_id is the recipient, ordered by "
    "occurred_at, then arrival, newest first. A recipient nothing is known of has an "
    "empty list.",
    tag="messages",
    security="bearerToken",
    query=RecipientQuery,
    replies={
        200: Reply("One page of the recipient's events.", RecipientEventPage),
        400: BAD_PARAMETER,
        401: TOKEN_UNAUTHORIZED,
        503: DATABASE_UNAVAILABLE,
    },
)
def recipient_events(recipient: str) -> Response:
    """One recipient's events across all messages, newest first."""
    params = query(RecipientQuery)
    page = paged(
        history.recipient_events, session=get_session(), recipient=recipient, **params.model_dump()
    )
    return answer(
        RecipientEventPage(recipient=recipient, events=page.items, next_cursor=page.next_cursor)
    )
