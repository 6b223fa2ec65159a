"""The read API: message summaries, timelines, targets and message lists."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app, stream_with_context

from .. import export, read
from ..db import get_session
from ..errors import ApiError
from ..keyset import Page
from ..openapi import (
    BAD_PARAMETER,
    DATABASE_UNAVAILABLE,
    MESSAGE_NOT_FOUND,
    TOKEN_UNAUTHORIZED,
    Reply,
    documented,
)
from ..schemas.messages import MessagePage, MessageSummary, TargetPage, TimelinePage
from ..schemas.queries import MessageQuery, PageQuery, TargetQuery, TimelineQuery
from .common import answer, bad_parameter, paged, query, require_token

bp = Blueprint("messages", __name__, url_prefix="/api")
bp.before_request(require_token)

_READ = {401: TOKEN_UNAUTHORIZED, 503: DATABASE_UNAVAILABLE}
_PAGE = {400: BAD_PARAMETER, 404: MESSAGE_NOT_FOUND, **_READ}
# With format=csv or format=ndjson: every matching item, streamed as a download.
_EXPORTS = {
    "text/csv": {"type": "string", "description": "UTF-8 with a byte order mark; a header row."},
    "application/x-ndjson": {"type": "string", "description": "One JSON item a line."},
}


# msgids contain ":" (v:1t:1603707455p:27133n:2); the path converter takes any text up
# to the next "/".
@bp.get("/messages/<msgid>")
@documented(
    operation_id="getMessage",
    summary="One message's summary",
    tag="messages",
    security="bearerToken",
    replies={200: Reply("The message's summary.", MessageSummary), 404: MESSAGE_NOT_FOUND, **_READ},
)
def message(msgid: str) -> Response:
    """One message's summary."""
    summary = read.message_summary(
        session=get_session(), msgid=_stored(msgid), stale_after=_stale_after()
    )
    if summary is None:
        raise _unknown(msgid)
    return answer(summary)


@bp.get("/messages/<msgid>/timeline")
@documented(
    operation_id="getTimeline",
    summary="One message's events in time order",
    description="Ordered by occurred_at, then arrival, then type (lifecycle).",
    tag="messages",
    security="bearerToken",
    query=TimelineQuery,
    replies={200: Reply("One page of the timeline.", TimelinePage, also=_EXPORTS), **_PAGE},
)
def timeline(msgid: str) -> Response:
    """One message's events in time order."""
    params = query(TimelineQuery)
    if params.format is not None:
        return _export(msgid, "events", params)
    page = _message_page(read.timeline, msgid, params)
    return answer(TimelinePage(msgid=msgid, events=page.items, next_cursor=page.next_cursor))


@bp.get("/messages/<msgid>/targets")
@documented(
    operation_id="listTargets",
    summary="The current status of each of one message's targets",
    description="Ordered by recipient, then sender.",
    tag="messages",
    security="bearerToken",
    query=TargetQuery,
    replies={200: Reply("One page of targets.", TargetPage, also=_EXPORTS), **_PAGE},
)
def targets(msgid: str) -> Response:
    """The current status of each of one message's targets."""
    params = query(TargetQuery)
    if params.format is not None:
        return _export(msgid, "targets", params)
    list_targets = functools.partial(read.targets, stale_after=_stale_after())
    page = _message_page(list_targets, msgid, params)
    return answer(TargetPage(msgid=msgid, targets=page.items, next_cursor=page.next_cursor))


@bp.get("/messages")
@documented(
    operation_id="listMessages",
    summary="Message summaries, newest first, filtered",
    tag="messages",
    security="bearerToken",
    query=MessageQuery,
    replies={
        200: Reply("One page of message summaries.", MessagePage),
        400: BAD_PARAMETER,
        **_READ,
    },
)
def messages() -> Response:
    """Message summaries, newest first, filtered."""
    params = query(MessageQuery)
    page = paged(
        read.list_messages,
        session=get_session(),
        stale_after=_stale_after(),
        **params.model_dump(),
    )
    return answer(MessagePage(messages=page.items, next_cursor=page.next_cursor))


def _message_page(list_page: Callable[..., Page[Any]], msgid: str, params: PageQuery) -> Page[Any]:
    """One page of a message's list; 404 when nothing at all is known of the message."""
    session = get_session()
    filters = params.model_dump(exclude={"format"})
    page = paged(list_page, session=session, msgid=_stored(msgid), **filters)
    if not page.items and not read.message_known(session=session, msgid=msgid):
        raise _unknown(msgid)
    return page


def _export(msgid: str, what: str, params: TimelineQuery | TargetQuery) -> Response:
    """Every matching item as a CSV or NDJSON download, streamed batch by batch."""
    fmt = params.format
    assert fmt is not None
    for paging in ("limit", "cursor"):
        if paging in params.model_fields_set:
            raise bad_parameter(paging, "an export (format) is not paged; leave it out")
    filters = params.model_dump(exclude={"format", "limit", "cursor"})
    if what == "targets":
        filters["stale_after"] = _stale_after()
    chunks = export.message_export(
        session=get_session(), msgid=_stored(msgid), what=what, fmt=fmt, **filters
    )
    if chunks is None:
        raise _unknown(msgid)
    name = export.filename(msgid, what, fmt)
    return Response(
        stream_with_context(chunk.encode() for chunk in chunks),
        mimetype=export.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _stored(msgid: str) -> str:
    """``msgid``, unless it holds a NUL, which no stored msgid does (PostgreSQL's text
    cannot hold one, so the intake quarantines such records): then 404 at once."""
    if "\x00" in msgid:
        raise _unknown(msgid)
    return msgid


def _unknown(msgid: str) -> ApiError:
    return ApiError(404, "not_found", f"No message {msgid!r} is known here.")


def _stale_after() -> timedelta:
    """STALE_AFTER, from the app's settings."""
    stale_after: timedelta = current_app.extensions["umstrack.settings"].stale_after
    return stale_after
