"""``GET /openapi.json``: the OpenAPI document, public, as it holds no data."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from ..openapi import Reply, document, documented

bp = Blueprint("docs", __name__)


@bp.get("/openapi.json")
@documented(
    operation_id="getOpenApiDocument",
    summary="This OpenAPI document",
    tag="service",
    security=None,
    replies={200: Reply("The OpenAPI 3.1 document.", None, schema={"type": "object"})},
)
def openapi_json() -> Response:
    """The OpenAPI document of this app, made once."""
    doc: dict[str, Any] | None = current_app.extensions.get("umstrack.openapi")
    if doc is None:
        doc = current_app.extensions["umstrack.openapi"] = document(current_app)
    return jsonify(doc)
