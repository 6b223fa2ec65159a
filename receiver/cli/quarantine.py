"""``umstrack quarantine list|replay``: read the input the intake could not use, and run
it through the intake again after a fix or a configuration change."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import click
from sqlmodel import Session

from ..config import Settings
from ..keyset import CursorError
from ..quarantine import list_quarantine, replay
from ..schemas.quarantine import QuarantinedInput, QuarantinePage, QuarantineQuery
from ..schemas.queries import DEFAULT_LIMIT, QueryError, parse_query
from .common import configure_logging, fail, missing_sqlite_file, print_json, printable
from .database import opened_database

_RAW_SHOWN = 300  # characters of a kept input shown in the human listing


def _query(**given: str | int | None) -> QuarantineQuery:
    """The options as the API's query (one shape, one set of checks); exit 2 naming the
    option that cannot be used."""
    values = {name: str(value) for name, value in given.items() if value is not None}
    try:
        return parse_query(QuarantineQuery, values, lambda name: [values[name]])
    except QueryError as exc:
        fail(f"--{exc.parameter}: {str(exc).removeprefix(f'{exc.parameter}: ')}", code=2)


def _filter_options(command: Any) -> Any:
    for option in reversed(
        (
            click.option("--reason", help="Only input kept for this reason (as counted)."),
            click.option("--channel", help="Only input from this UMS channel (channelkey)."),
            click.option("--since", help="Only input received at or after this ISO 8601 time."),
        )
    ):
        command = option(command)
    return command


def _settings() -> Settings:
    settings = Settings.from_env()
    if database := missing_sqlite_file(settings):
        fail(f"no database at {database} (set DATABASE_URL)", code=1)
    return settings


@click.group("quarantine", epilog="Reads DATABASE_URL.")
def command() -> None:
    """The input the intake could not use: list it, replay it."""


@command.command("list", epilog="Reads DATABASE_URL.")
@_filter_options
@click.option("--limit", type=int, default=DEFAULT_LIMIT, show_default=True, help="Inputs to show.")
@click.option("--cursor", help="The next page's cursor, as a previous listing printed it.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON answer instead.")
def list_command(
    reason: str | None,
    channel: str | None,
    since: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """List kept input, newest first, and how many each reason holds."""
    configure_logging(result_on_stdout=True)
    params = _query(reason=reason, channel=channel, since=since, limit=limit, cursor=cursor)
    with opened_database(_settings()) as engine, Session(engine) as session:
        try:
            page = list_quarantine(session=session, **params.model_dump())
        except CursorError as exc:
            fail(f"--cursor: {exc}", code=2)
    if as_json:
        print_json(page.model_dump(mode="json"))
    else:
        click.echo(_listing(page))


def _listing(page: QuarantinePage) -> str:
    """The page as text for a terminal: every value from outside escaped."""
    lines = ["Reasons (all matching input):"]
    lines += [f"  {c.count:>7}  {printable(c.reason)}" for c in page.counts] or ["  (none)"]
    lines.append("")
    for item in page.items:
        lines += _described(item)
    if page.next_cursor:
        lines.append(f"More: --cursor {page.next_cursor}")
    return "\n".join(lines)


def _described(item: QuarantinedInput) -> list[str]:
    head = f"#{item.id}  {item.received_at.isoformat()}  channel {item.channelkey or '-'}"
    if item.channel:
        head += f" ({item.channel})"
    lines = [printable(head), f"  reason: {printable(item.reason)}"]
    if item.replayed_at is not None:
        when = item.replayed_at.isoformat()
        lines.append(f"  replayed {when}: {printable(item.replay_result or '')}")
    raw = item.raw
    if len(raw) > _RAW_SHOWN:
        raw = f"{raw[:_RAW_SHOWN]}... ({len(item.raw)} characters; --json shows all)"
    lines += [f"  raw: {printable(raw)}", ""]
    return lines


@command.command("replay", epilog="Reads DATABASE_URL.")
@click.option("--id", "ids", type=int, multiple=True, help="A quarantine id (repeatable).")
@_filter_options
@click.option("--all", "everything", is_flag=True, help="Every kept input.")
@click.option("--again", is_flag=True, help="Also input an earlier replay stored.")
@click.option("--dry-run", is_flag=True, help="Do it all, then roll it back: nothing changes.")
def replay_command(
    ids: tuple[int, ...],
    reason: str | None,
    channel: str | None,
    since: str | None,
    everything: bool,
    again: bool,
    dry_run: bool,
) -> None:
    """Run kept input through the intake again (as a callback of the channel that posted
    it) and mark each row with what came of it; print a JSON summary.

    Choose by --id, or by --reason, --channel and --since, or --all. A record already
    stored counts as a duplicate: replaying twice stores it once.
    """
    configure_logging(result_on_stdout=True)
    filtered = any(value is not None for value in (reason, channel, since))
    if ids and (filtered or everything):
        fail("choose by --id or by filters (--reason, --channel, --since, --all), not both", code=2)
    if not (ids or filtered or everything):
        fail("choose what to replay: --id, --reason, --channel, --since, or --all", code=2)
    params = _query(reason=reason, channel=channel, since=since)
    with opened_database(_settings()) as engine:
        summary = replay(
            engine=engine,
            ids=ids,
            reason=params.reason,
            channel=params.channel,
            since=params.since,
            again=again,
            dry_run=dry_run,
        )
    result: Mapping[str, Any] = dataclasses.asdict(summary)
    print_json(result)
