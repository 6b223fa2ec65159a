"""Health check for the platform's router and monitors."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ..db import database_answers, get_engine
from ..errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """200 when the database answers, 503 otherwise."""
    if not database_answers(get_engine()):
        return error_response(503, "database_unavailable", "The database does not answer.")
    return jsonify(status="ok")
