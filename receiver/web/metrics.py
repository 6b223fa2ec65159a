"""``GET /metrics``: the Prometheus scrape, behind ``METRICS_TOKEN``.

With ``METRICS_TOKEN`` set, a scrape must bring it as a bearer token. Unset, metrics
are served only when the server is bound to loopback (``HOST``): on any other address
anyone who can reach it would read them, so they are refused, saying what to set.

Gauges worked out at scrape time from the database are added with :func:`add_gauge`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Final

from flask import Blueprint, Flask, Response, current_app, request

from .. import metrics
from ..auth import TokenAuth
from ..config import Settings
from ..errors import ApiError
from ..openapi import Reply, documented

bp = Blueprint("metrics", __name__)
_GAUGES: Final = "umstrack.metrics.gauges"
_AUTH: Final = "umstrack.metrics.auth"


def init_app(app: Flask) -> None:
    """Serve ``/metrics`` from ``app``, and start counting."""
    settings: Settings = app.extensions["umstrack.settings"]
    metrics.enable()
    app.extensions[_AUTH] = TokenAuth([settings.metrics_token] if settings.metrics_token else [])
    app.extensions.setdefault(_GAUGES, [])
    app.register_blueprint(bp)


def add_gauge(
    app: Flask,
    name: str,
    documentation: str,
    read: Callable[[], float | dict[tuple[str, ...], float]],
    labels: Sequence[str] = (),
    *,
    max_age: float = 0.0,
) -> None:
    """Add a gauge that ``read`` works out at a scrape, inside the scrape's request (so
    it may query the database: ``receiver.db.get_session()``), reusing a reading for
    ``max_age`` seconds. ``read`` returns a value, or with ``labels`` a value by tuple
    of label values; if it raises, the gauge is left out of that scrape."""
    app.extensions.setdefault(_GAUGES, []).append(
        metrics.ScrapeGauge(name, documentation, read, tuple(labels), max_age)
    )


def loopback(host: str | None) -> bool:
    """Whether ``host`` (the bound address; None: every interface) is loopback only."""
    if host is None:
        return False
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@bp.get("/metrics")
@documented(
    operation_id="metrics",
    summary="Prometheus metrics of every worker",
    description="Prometheus text exposition format. With METRICS_TOKEN set, the request "
    "must carry it as a bearer token; without it, metrics are served only when the server "
    "is bound to a loopback address (HOST), and refused otherwise.",
    tag="service",
    security="metricsToken",
    replies={
        200: Reply(
            "The metrics, in the Prometheus text format.",
            None,
            "text/plain",
            {"type": "string"},
        ),
        401: Reply(
            "METRICS_TOKEN is set and the request does not carry it (error `unauthorized`).",
            headers=("WWW-Authenticate",),
        ),
        404: Reply(
            "METRICS_TOKEN is unset and the server is not bound to loopback (error "
            "`metrics_disabled`)."
        ),
    },
)
def serve_metrics() -> Response:
    """The Prometheus scrape."""
    settings: Settings = current_app.extensions["umstrack.settings"]
    if settings.metrics_token:
        auth: TokenAuth = current_app.extensions[_AUTH]
        if not auth.allows(request.headers.get("Authorization")):
            raise ApiError(
                401,
                "unauthorized",
                "GET /metrics needs the METRICS_TOKEN bearer token.",
                {"WWW-Authenticate": 'Bearer realm="umstrack metrics"'},
            )
    elif not loopback(settings.host):
        raise ApiError(
            404,
            "metrics_disabled",
            "Metrics are served on a loopback bind only unless METRICS_TOKEN is set: set "
            "METRICS_TOKEN and scrape with it as a bearer token.",
        )
    body, content_type = metrics.scrape(current_app.extensions[_GAUGES])
    return Response(body, content_type=content_type)
