"""Signing in and out of the web UI, and the checks every request passes: a signed-in
session (else to the sign-in page) and, on every POST, the form's CSRF token.

The session cookie holds a digest of the token, never the token: signed, not
encrypted, so whatever it holds can be read by whoever has the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from ...auth import TokenAuth
from ...config import Settings

bp = Blueprint("guard", __name__, template_folder="templates", static_folder=None)
PREFIX = "/ui"
CSRF_FIELD = "csrf_token"
# Reachable without signing in: the form itself, and the stylesheet it uses.
_OPEN_ENDPOINTS = frozenset({"guard.sign_in", "static", "pages.root"})


def csrf_token() -> str:
    """This session's CSRF token, made on first use; every form carries it."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def signed_in() -> bool:
    """Whether the session was signed in with a token that is still configured."""
    digest = session.get("token_digest")
    if not isinstance(digest, str):
        return False
    settings: Settings = current_app.extensions["umstrack.settings"]
    # Every configured token is compared: the time taken does not say which came close.
    matches = [hmac.compare_digest(digest, _digest(token)) for token in settings.api_tokens]
    return any(matches)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@bp.app_context_processor
def _template_globals() -> dict[str, object]:
    return {"csrf_token": csrf_token, "signed_in": signed_in, "CSRF_FIELD": CSRF_FIELD}


@bp.before_app_request
def _check() -> BaseResponse | None:
    if request.method == "POST":
        given = request.form.get(CSRF_FIELD, "")
        expected = session.get(CSRF_FIELD)
        if not isinstance(expected, str) or not hmac.compare_digest(given, expected):
            abort(400, "The form is missing its CSRF token, or it is stale: reload the page.")
    if request.endpoint in _OPEN_ENDPOINTS or signed_in():
        return None
    if request.endpoint == "pages.live":
        abort(401, "Signed out: reload the page to sign in again.")
    return redirect(url_for("guard.sign_in", next=request.full_path.rstrip("?")))


@bp.route(f"{PREFIX}/sign-in", methods=["GET", "POST"])
def sign_in() -> str | BaseResponse | tuple[str, int]:
    """The sign-in form; a POST checks the pasted token against API_TOKENS."""
    settings: Settings = current_app.extensions["umstrack.settings"]
    next_page = _local(request.values.get("next", ""))
    if request.method == "GET":
        return render_template("sign_in.html", next_page=next_page, problem=None)
    token = request.form.get("token", "").strip()
    auth: TokenAuth = current_app.extensions["umstrack.token_auth"]
    if not auth.allows(f"Bearer {token}"):
        problem = (
            "That token is not one of the configured API tokens."
            if settings.api_tokens
            else "No API tokens are configured (API_TOKENS), so nobody can sign in."
        )
        page = render_template("sign_in.html", next_page=next_page, problem=problem)
        return page, 401
    # A fresh session on sign-in: nothing from before (a planted CSRF token) carries over.
    session.clear()
    session["token_digest"] = _digest(token)
    csrf_token()
    return redirect(next_page or url_for("pages.messages"))


@bp.post(f"{PREFIX}/sign-out")
def sign_out() -> Response | BaseResponse:
    """End the session."""
    session.clear()
    return redirect(url_for("guard.sign_in"))


def _local(target: str) -> str:
    """``target`` if it is a page of this UI (no other host, no scheme), else empty."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/"):
        return ""
    if "\\" in target or target.startswith("//"):
        return ""
    return target
