"""Health check for the platform's router and monitors."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response
from pydantic import BaseModel

from ..db import database_answers, get_engine
from ..errors import error_response
from ..openapi import Reply, documented
from .common import answer

bp = Blueprint("health", __name__)


class Health(BaseModel):
    """The health answer."""

    status: Literal["ok"]


@bp.get("/healthz")
@documented(
    operation_id="healthz",
    summary="Health check: does the database answer?",
    tag="service",
    security=None,
    replies={
        200: Reply("The database answers.", Health),
        503: Reply("The database does not answer (error `database_unavailable`)."),
    },
)
def healthz() -> Response:
    """200 when the database answers, 503 otherwise."""
    if not database_answers(get_engine()):
        return error_response(503, "database_unavailable", "The database does not answer.")
    return answer(Health(status="ok"))
