"""``umstrack status MSGID``: a message's summary and timeline as terminal tables,
read straight from the database (no server needed). Every value is printed with its
control characters escaped: callbacks and provider answers come from outside."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from sender.ums.protocol import STATUSES

from . import read as queries
from .text import printable

PAGE = 1000


def status_report(*, session: Session, msgid: str, limit: int | None = PAGE) -> str | None:
    """The report for ``msgid`` (at most ``limit`` timeline rows; None for all), or
    None when nothing is known of it."""
    found = queries.message_summary(session=session, msgid=msgid)
    if found is None:
        return None
    summary = found.model_dump(mode="json")
    events = list(_events(session, msgid, limit))
    lines = [*_summary_lines(summary), "", f"Timeline ({len(events)} of {_total(summary)})"]
    lines += _table(
        ("occurred at (UTC)", "status", "channel", "target", "detail"),
        [_event_row(event) for event in events],
    )
    if len(events) < _total(summary):
        lines.append(f"... {_total(summary) - len(events)} more; --limit 0 shows all")
    return "\n".join(lines)


def _events(session: Session, msgid: str, limit: int | None) -> Iterator[dict[str, Any]]:
    cursor = None
    left = limit
    while left is None or left > 0:
        size = PAGE if left is None else min(PAGE, left)
        page = queries.timeline(session=session, msgid=msgid, limit=size, cursor=cursor)
        yield from (event.model_dump(mode="json") for event in page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
        left = None if left is None else left - len(page.items)


def _total(summary: dict[str, Any]) -> int:
    return sum(summary["counts"].values())


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    facts = [
        ("message", summary["msgid"]),
        ("provider", summary["provider"]),
        ("channelkey", summary["channelkey"]),
        ("sendno", summary["sendno"]),
        ("sent at", _when(summary["sent_at"])),
        ("send", _send(summary["send"])),
        ("withdraw", _withdraw(summary.get("withdraw"))),
        ("params", None if summary["params"] is None else json.dumps(summary["params"])),
        ("first event", _when(summary["first_event_at"])),
        ("last event", _when(summary["last_event_at"])),
    ]
    lines = [f"{name + ':':<13}{printable(value)}" for name, value in facts if value is not None]
    by_status = summary["targets"]["by_status"]
    rows = [(s, str(summary["counts"][s]), str(by_status[s])) for s in STATUSES]
    rows.append(("total", str(_total(summary)), str(summary["targets"]["total"])))
    return [*lines, "", *_table(("status", "events", "targets now"), rows, numeric={1, 2})]


def _event_row(event: dict[str, Any]) -> tuple[str, ...]:
    channel = event["channel"] or ""
    extras = [event["app_platform"], event["app_vendor"]]
    if any(extras):
        channel += f" ({'/'.join(x for x in extras if x)})"
    target = event["userid"] or event["sender_id"] or "(message)"
    if event["userid"] and event["sender_id"]:
        target += f" [{event['sender_id']}]"
    error = event["error"]
    detail = "" if error is None else f"error {error['code']}: {error['message']}"
    return (_when(event["occurred_at"]) or "", event["status"], channel, target, detail)


def _send(send: dict[str, Any] | None) -> str | None:
    if send is None:
        return None
    code = "" if send["code"] is None else f" (code {send['code']})"
    return f"{send['outcome']}{code} {send['message'] or ''}".strip()


def _withdraw(withdraw: dict[str, Any] | None) -> str | None:
    if withdraw is None:
        return None
    code = "" if withdraw["code"] is None else f" (code {withdraw['code']})"
    text = f"{withdraw['state']}{code} {withdraw['message'] or ''}".strip()
    return f"{text}, asked {_when(withdraw['requested_at'])}"


def _when(iso: str | None) -> str | None:
    if iso is None:
        return None
    moment = datetime.fromisoformat(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (
        f".{moment.microsecond // 1000:03d}" if moment.microsecond else ""
    )


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int] | None = None
) -> list[str]:
    """Rows under a header, columns padded to their widest cell (escaped first)."""
    numeric = numeric or set()
    rows = [[printable(str(cell)) for cell in row] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(cell).rjust(width) if i in numeric else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *map(line, rows)]
