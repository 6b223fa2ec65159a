"""The Flask app: settings, database, auth, the senders and the blueprints, with the
web UI mounted at ``/`` and ``/ui/``, built by ``create_app`` (exported as
``receiver.create_app``)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from flask import Flask

from . import db, errors, logs, stale
from .auth import ChannelAuth, TokenAuth
from .config import Settings
from .drain import Drainer
from .sending.ums import UmsSender
from .sending.withdraw import Withdrawer
from .spool import Spool, SpoolStatus
from .web import (
    callbacks,
    docs,
    health,
    messages,
    quarantine,
    recipients,
    security,
    sends,
    ui,
    withdraw,
)
from .web.metrics import add_gauge
from .web.metrics import init_app as serve_metrics
from .web.observe import init_app as observe_requests

# The stale count reads one index range per recent message (about half a second for
# 20,000 of them): a worker reuses it for a minute however often it is scraped.
STALE_GAUGE_MAX_AGE = 60.0


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app; ``config`` takes the environment's place (tests pass their own)."""
    settings = Settings.from_env(config)
    app = logs.RouteLoggingFlask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["umstrack.settings"] = settings
    app.extensions["umstrack.engine"] = db.make_engine(settings)
    app.extensions["umstrack.channel_auth"] = ChannelAuth(settings.channels)
    app.extensions["umstrack.token_auth"] = TokenAuth(settings.api_tokens)
    app.extensions["umstrack.sender"] = UmsSender.from_settings(
        settings, engine=app.extensions["umstrack.engine"]
    )
    app.extensions["umstrack.withdrawer"] = Withdrawer.from_settings(
        settings, engine=app.extensions["umstrack.engine"]
    )
    # The outage spool (PostgreSQL only), and its drainer: started by the gunicorn
    # worker that serves the app (receiver.gunicorn_config), not by building the app.
    spool = Spool.from_settings(settings)
    app.extensions["umstrack.spool"] = spool
    app.extensions["umstrack.drainer"] = (
        Drainer(app.extensions["umstrack.engine"], spool) if spool else None
    )
    app.teardown_appcontext(db.close_session)
    errors.register(app)
    blueprints = (callbacks.bp, messages.bp, recipients.bp, sends.bp, withdraw.bp)
    for blueprint in (*blueprints, quarantine.bp, health.bp, docs.bp):
        app.register_blueprint(blueprint)
    serve_metrics(app)
    add_gauge(
        app,
        "umstrack_stale_targets",
        "Targets still waiting for a report (target_valid, submitted) that nothing arrived "
        f"for in STALE_AFTER, among the messages of the last {stale.METRIC_HORIZON.days} days",
        lambda: _stale_targets(settings),
        max_age=STALE_GAUGE_MAX_AGE,
    )
    if spool is not None:
        _spool_gauges(app, spool)
    logs.log_to_stdout()
    # The web UI is an app of its own beside the API: its HTML pages are not API routes.
    app.extensions["umstrack.ui"] = ui.create_ui(app)
    for served in (app, app.extensions["umstrack.ui"]):
        observe_requests(served)
    app.wsgi_app = ui.mount(app.wsgi_app, app.extensions["umstrack.ui"])  # type: ignore[method-assign,assignment]
    security.init_app(app)  # last: its proxy check wraps the UI too
    return app


def _spool_gauges(app: Flask, spool: Spool) -> None:
    """The spool's depth and age, read from its directory at each scrape (no database)."""
    last: list[tuple[float, SpoolStatus]] = []

    def status() -> SpoolStatus:
        # One look at the directory serves the four gauges of a scrape.
        if not last or time.monotonic() - last[0][0] > 1.0:
            last[:] = [(time.monotonic(), spool.status())]
        return last[0][1]

    add_gauge(
        app,
        "umstrack_spool_entries",
        "Batches in the outage spool waiting for the database (held ones apart)",
        lambda: float(status().entries),
    )
    add_gauge(
        app, "umstrack_spool_bytes", "Bytes in the outage spool", lambda: float(status().bytes)
    )
    add_gauge(
        app,
        "umstrack_spool_held_entries",
        "Spooled batches a drain set aside (see umstrack spool status)",
        lambda: float(status().held),
    )
    add_gauge(
        app,
        "umstrack_spool_oldest_age_seconds",
        "How long the oldest batch in the outage spool has waited (0 when empty)",
        lambda: status().age_seconds(datetime.now(UTC)),
    )


def _stale_targets(settings: Settings) -> float:
    return stale.stale_targets(
        db.get_session(), stale_after=settings.stale_after, now=datetime.now(UTC)
    )
