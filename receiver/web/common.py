"""What the blueprints share: the bearer-token gate, query parsing, model answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Response, current_app, redirect, request
from pydantic import BaseModel
from werkzeug.wrappers import Response as BaseResponse

from ..auth import TokenAuth
from ..config import Settings
from ..errors import ApiError
from ..keyset import CursorError
from ..schemas.queries import PageQuery, QueryError, parse_query

Query = TypeVar("Query", bound=PageQuery)

Listed = TypeVar("Listed")  # a page of a list, whatever its shape


def require_token() -> BaseResponse | None:
    """Refuse (401) a request without a configured bearer token: the API's answers
    carry phone numbers, e-mail addresses and user ids, so nobody reads anonymously.
    A browser that opens a read URL is sent to the web UI's page of it instead."""
    settings: Settings = current_app.extensions["umstrack.settings"]
    auth: TokenAuth = current_app.extensions["umstrack.token_auth"]
    if not auth.allows(request.headers.get("Authorization")):
        page = _ui_page()
        if page is not None:
            return redirect(page, 303)
        reason = (
            "a valid bearer token is required"
            if settings.api_tokens
            else "no API tokens are configured (API_TOKENS), so the API is closed"
        )
        raise ApiError(
            401,
            "unauthorized",
            f"Unauthorized: {reason}.",
            {"WWW-Authenticate": 'Bearer realm="umstrack"'},
        )
    return None


def _ui_page() -> str | None:
    """The UI page of a read URL opened by a browser: a GET without credentials that
    asks for HTML before JSON. The page asks the person to sign in; nothing is read
    here, so the redirect tells a stranger nothing the 401 would not."""
    if request.method != "GET" or "Authorization" in request.headers:
        return None
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) != "text/html":
        return None
    msgid = (request.view_args or {}).get("msgid")
    if request.endpoint == "messages.messages":
        query = request.query_string.decode("latin-1")
        return "/ui/" + (f"?{query}" if query else "")
    if request.endpoint in ("messages.message", "messages.timeline", "messages.targets"):
        return "/ui/messages/" + quote(str(msgid), safe=":@!$&'()*+,;=")
    recipient = (request.view_args or {}).get("recipient")
    if request.blueprint == "recipients" and recipient is not None:
        return "/ui/recipients/" + quote(str(recipient), safe=":@!$&'()*+,;=")
    return None


def query(model: type[Query]) -> Query:
    """The request's query string as ``model``; 400 naming the first bad parameter."""
    try:
        return parse_query(model, request.args.keys(), request.args.getlist)
    except QueryError as exc:
        raise bad_parameter(exc.parameter, str(exc).removeprefix(f"{exc.parameter}: ")) from None


def bad_parameter(parameter: str, message: str) -> ApiError:
    """400 for a query parameter that cannot be used; the message starts with its name."""
    return ApiError(400, "invalid_parameter", f"{parameter}: {message}")


def paged(list_page: Callable[..., Listed], **kwargs: Any) -> Listed:
    """``list_page(**kwargs)``, with a cursor it refuses answered 400 naming ``cursor``."""
    try:
        return list_page(**kwargs)
    except CursorError as exc:
        raise bad_parameter("cursor", f"{exc}; pass back a next_cursor unchanged") from None


def answer(model: BaseModel, status: int = 200) -> Response:
    """A JSON answer shaped by ``model``."""
    return Response(model.model_dump_json(), status=status, mimetype="application/json")
