"""The UI's pages: messages, one message (and its live fragment), a send's parts, a
recipient's targets, the quarantine.

Filters are parsed as the API parses them: a value that cannot be used shows the API's
400 message on the page, above an empty list, never an error page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ... import history, read, ui_read
from ...db import get_session
from ...keyset import CursorError, Page
from ...schemas.queries import (
    MessageQuery,
    PageQuery,
    QueryError,
    TargetQuery,
    TimelineQuery,
    parse_query,
)
from . import shapes

bp = Blueprint("pages", __name__)
PREFIX = "/ui"
LIST_LIMIT = "50"
Query = TypeVar("Query", bound=PageQuery)


@bp.app_template_global()
def ui_shapes() -> Any:
    """The drawing helpers, for the templates."""
    return shapes


@bp.get("/")
def root() -> BaseResponse:
    """The UI's front page."""
    return redirect(url_for("pages.messages"))


@bp.get(PREFIX)
@bp.get(f"{PREFIX}/")
def messages() -> str:
    """Messages, newest first, filtered as ``GET /api/messages`` is."""
    given = _given(request.args.items(multi=True))
    # The form's one "param" field takes key=value; the API's param.<key> works too.
    for pair in given.pop("param", []):
        key, _, value = pair.partition("=")
        given.setdefault(f"param.{key.strip()}", []).append(value.strip())
    problem, page = None, Page[Any]([], None)
    try:
        params = _parse(MessageQuery, given)
        page = read.list_messages(session=get_session(), **_arguments(params))
    except (QueryError, CursorError) as exc:
        problem = _reason(exc)
    return render_template(
        "messages.html",
        problem=problem,
        messages=[m.model_dump(mode="json") for m in page.items],
        next_url=_next_url(page.next_cursor, "cursor"),
        form=_form(given),
    )


@bp.get(f"{PREFIX}/messages/<msgid>")
def message(msgid: str) -> str:
    """One message: funnel, channels, errors, targets (filtered, paged) and timeline."""
    summary = _summary(msgid)
    given = _given(request.args.items(multi=True))
    target_args = {k[2:]: v for k, v in given.items() if k.startswith("t.")}
    problem, targets = None, Page[Any]([], None)
    try:
        target_query = _parse(TargetQuery, target_args)
        targets = read.targets(
            session=get_session(),
            msgid=msgid,
            stale_after=current_app.extensions["umstrack.settings"].stale_after,
            **_arguments(target_query),
        )
    except (QueryError, CursorError) as exc:
        problem = _reason(exc)
    return render_template(
        "message.html",
        **_live_parts(msgid, summary, given.get("e.cursor", [None])[0]),
        problem=problem,
        targets=[t.model_dump(mode="json") for t in targets.items],
        targets_next=_next_url(targets.next_cursor, "t.cursor"),
        form=_form(target_args),
    )


@bp.get(f"{PREFIX}/messages/<msgid>/live")
def live(msgid: str) -> str:
    """The parts of a message page that change as callbacks arrive, as HTML to swap in."""
    return render_template(
        "live.html", **_live_parts(msgid, _summary(msgid), request.args.get("e.cursor"))
    )


@bp.get(f"{PREFIX}/sends/<send_id>")
def send(send_id: str) -> str:
    """A send's parts: the messages with this send_id, each with its send facts."""
    page = read.list_messages(session=get_session(), send_id=send_id, limit=1000)
    parts = sorted(
        (m.model_dump(mode="json") for m in page.items),
        key=lambda m: (m["part"] is None, m["part"] or 0, m["msgid"]),
    )
    if not parts:
        abort(404, f"No send {send_id!r} is known here.")
    return render_template("send.html", send_id=send_id, parts=parts)


@bp.get(f"{PREFIX}/recipients/<recipient>")
def recipient(recipient: str) -> str:
    """A recipient's targets on every message, the newest message first, and its
    history (its events across messages, newest first, paged)."""
    found = ui_read.recipient_targets(session=get_session(), recipient=recipient)
    rows = [
        {
            "msgid": f.msgid,
            "sendno": f.sendno,
            "created_at": f.created_at.isoformat(),
            **f.target.model_dump(mode="json"),
        }
        for f in found
    ]
    problem, events = None, Page[Any]([], None)
    try:
        events = history.recipient_events(
            session=get_session(),
            recipient=recipient,
            limit=int(LIST_LIMIT),
            cursor=request.args.get("cursor") or None,
        )
    except CursorError as exc:
        problem = _reason(exc)
    return render_template(
        "recipient.html",
        recipient=recipient,
        rows=rows,
        problem=problem,
        events=[e.model_dump(mode="json") for e in events.items],
        events_next=_next_url(events.next_cursor, "cursor"),
        limit=ui_read.RECIPIENT_PAGE,
    )


@bp.get(f"{PREFIX}/quarantine")
def quarantine() -> str:
    """Quarantine reasons with their counts, and the newest records (of one reason)."""
    session = get_session()
    reason = request.args.get("reason") or None
    before_text = request.args.get("before", "")
    problem, before = None, None
    if before_text:
        if before_text.isascii() and before_text.isdigit() and len(before_text) < 19:
            before = int(before_text)
        else:
            problem = f"before: not a cursor of this page: {before_text!r}"
    page = ui_read.quarantined(session=session, reason=reason, before=before)
    return render_template(
        "quarantine.html",
        problem=problem,
        reasons=ui_read.quarantine_reasons(session=session),
        reason=reason,
        records=page.items,
        next_url=_next_url(page.next_cursor, "before"),
    )


def _summary(msgid: str) -> dict[str, Any]:
    stale_after = current_app.extensions["umstrack.settings"].stale_after
    found = (
        None
        if "\x00" in msgid
        else read.message_summary(session=get_session(), msgid=msgid, stale_after=stale_after)
    )
    if found is None:
        abort(404, f"No message {msgid!r} is known here.")
    return found.model_dump(mode="json")


def _live_parts(msgid: str, summary: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    """What both the page and its live fragment show: summary, funnel, timeline page."""
    problem, events = None, Page[Any]([], None)
    try:
        query = _parse(TimelineQuery, {"cursor": [cursor]} if cursor else {})
        events = read.timeline(session=get_session(), msgid=msgid, **_arguments(query))
    except (QueryError, CursorError) as exc:
        problem = _reason(exc)
    return {
        "msgid": msgid,
        "summary": summary,
        "funnel": shapes.funnel(summary),
        "events": [e.model_dump(mode="json") for e in events.items],
        "events_next": _next_url(events.next_cursor, "e.cursor"),
        "timeline_problem": problem,
        "live_url": url_for("pages.live", **_values({"msgid": msgid, "e.cursor": cursor})),
    }


def _given(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The query string's non-empty values by name (an empty form field filters nothing)."""
    given: dict[str, list[str]] = {}
    for name, value in items:
        if value.strip():
            given.setdefault(name, []).append(value.strip())
    return given


def _parse(model: type[Query], given: Mapping[str, list[str]]) -> Query:
    """``given`` parsed as the API parses it (so the UI refuses exactly what the API
    does); the UI's pages are shorter than the API's."""
    values = {"limit": [LIST_LIMIT], **given}
    return parse_query(model, values.keys(), lambda name: values[name])


def _arguments(query: PageQuery) -> dict[str, Any]:
    """A parsed query as a read function's arguments; a page is never an export."""
    return query.model_dump(exclude={"format"})


def _reason(exc: Exception) -> str:
    if isinstance(exc, CursorError):
        return f"cursor: {exc}; follow the page's own links"
    return str(exc)


def _form(given: Mapping[str, list[str]]) -> dict[str, str]:
    """The filter form's current values (the last of each)."""
    return {name: values[-1] for name, values in given.items() if values}


def _next_url(cursor: str | None, name: str) -> str | None:
    """This page's URL with ``name`` set to ``cursor`` (None on the last page)."""
    if cursor is None:
        return None
    args: dict[str, Any] = request.args.to_dict(flat=False)
    args[name] = [cursor]
    return url_for(
        request.endpoint or "pages.messages", **_values({**(request.view_args or {}), **args})
    )


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    """URL values without the unset ones."""
    return {name: value for name, value in values.items() if value is not None}
