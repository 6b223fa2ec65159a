"""The Flask app: settings, database, auth, the senders and the blueprints, with the
web UI mounted at ``/`` and ``/ui/``, built by ``create_app`` (exported as
``receiver.create_app``)."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from . import db, errors, logs
from .auth import ChannelAuth, TokenAuth
from .config import Settings
from .sending.ums import UmsSender
from .sending.withdraw import Withdrawer
from .web import callbacks, docs, health, messages, recipients, sends, ui, withdraw
from .web.metrics import init_app as serve_metrics
from .web.observe import init_app as observe_requests


def create_app(config: Mapping[str, str] | None = None) -> Flask:
    """Build the app; ``config`` takes the environment's place (tests pass their own)."""
    settings = Settings.from_env(config)
    app = Flask(__name__)
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
    app.teardown_appcontext(db.close_session)
    errors.register(app)
    blueprints = (callbacks.bp, messages.bp, recipients.bp, sends.bp, withdraw.bp)
    for blueprint in (*blueprints, health.bp, docs.bp):
        app.register_blueprint(blueprint)
    serve_metrics(app)
    logs.log_to_stdout()
    # The web UI is an app of its own beside the API: its HTML pages are not API routes.
    app.extensions["umstrack.ui"] = ui.create_ui(app)
    for served in (app, app.extensions["umstrack.ui"]):
        observe_requests(served)
    app.wsgi_app = ui.mount(app.wsgi_app, app.extensions["umstrack.ui"])  # type: ignore[method-assign,assignment]
    return app
