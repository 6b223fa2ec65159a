"""The quarantine list: the input the intake could not use, filtered and paged."""

from __future__ import annotations

from flask import Blueprint, Response

from ..db import get_session
from ..openapi import BAD_PARAMETER, DATABASE_UNAVAILABLE, TOKEN_UNAUTHORIZED, Reply, documented
from ..quarantine import list_quarantine
from ..schemas.quarantine import QuarantinePage, QuarantineQuery
from .common import answer, paged, query, require_token

bp = Blueprint("quarantine", __name__, url_prefix="/api")
bp.before_request(require_token)


@bp.get("/quarantine")
@documented(
    operation_id="listQuarantine",
    summary="The input the intake could not use, newest first, with counts by reason",
    description="Each kept record or body, with its reason and, once `umstrack "
    "quarantine replay` ran it through the intake again, what came of that. Ordered by "
    "arrival, newest first.",
    tag="callbacks",
    security="bearerToken",
    query=QuarantineQuery,
    replies={
        200: Reply("One page of kept input, and the counts by reason.", QuarantinePage),
        400: BAD_PARAMETER,
        401: TOKEN_UNAUTHORIZED,
        503: DATABASE_UNAVAILABLE,
    },
)
def quarantine() -> Response:
    """The input the intake could not use, newest first, with counts by reason."""
    params = query(QuarantineQuery)
    page = paged(list_quarantine, session=get_session(), **params.model_dump())
    return answer(page)
