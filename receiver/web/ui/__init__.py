"""The web UI: server-rendered pages for people, signed in with an API token.

It is an app of its own, mounted beside the API at ``/`` and ``/ui/``: its routes are
HTML, not API operations, so the OpenAPI document (made from the API app's routes)
never sees them. It shares the API app's settings, engine and token check.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, render_template, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from ...db import close_session
from ...logs import RouteLoggingFlask
from . import guard, pages

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
PREFIX = "/ui"


class _SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie, Secure whenever the request came over https."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure on https requests (behind a proxy, as it reports the scheme)."""
        return request.is_secure


def create_ui(parent: Flask) -> Flask:
    """The UI app, sharing ``parent``'s settings, engine and auth."""
    ui = RouteLoggingFlask(__name__, static_url_path=f"{PREFIX}/static")
    settings = parent.extensions["umstrack.settings"]
    ui.extensions.update(parent.extensions)
    if settings.secret_key:
        ui.secret_key = settings.secret_key
    else:
        ui.secret_key = secrets.token_urlsafe(32)
        log.warning(
            "SECRET_KEY is not set: the web UI signs sessions with a key of this process, "
            "so sign-ins end with a restart (and do not carry across gunicorn workers)"
        )
    ui.config.update(
        SESSION_COOKIE_NAME="umstrack_ui",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_PATH="/",
    )
    ui.session_interface = _SessionInterface()
    ui.teardown_appcontext(close_session)
    ui.register_blueprint(guard.bp)
    ui.register_blueprint(pages.bp)

    @ui.errorhandler(HTTPException)
    def _error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        return render_template("error.html", code=code, description=exc.description), code

    @ui.after_request
    def _headers(response: Response) -> Response:
        # The pages show phone numbers and e-mail addresses: no caching, no framing.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return ui


def mount(api: WSGIApplication, ui: WSGIApplication) -> WSGIApplication:
    """A WSGI app that hands ``/`` and ``/ui/...`` to ``ui`` and the rest to ``api``."""

    def dispatch(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        target: Any = ui if path in ("/", PREFIX) or path.startswith(PREFIX + "/") else api
        result: Iterable[bytes] = target(environ, start_response)
        return result

    return dispatch
