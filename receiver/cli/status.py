"""``umstrack status MSGID``: a message's summary and timeline, from the database."""

from __future__ import annotations

import click
from sqlmodel import Session

from ..config import Settings
from ..report import status_report
from .common import configure_logging, fail, missing_sqlite_file
from .database import opened_database


@click.command(
    "status",
    epilog="Reads DATABASE_URL. Callback text is printed with control characters escaped. "
    "Exit 1 when the message is unknown or the database cannot be read, 2 when "
    "DATABASE_URL cannot be used as written.",
)
@click.argument("msgid")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Timeline rows to show; 0 shows all.",
)
def command(msgid: str, limit: int) -> None:
    """Print MSGID's summary and timeline as tables, straight from the database."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    if database := missing_sqlite_file(settings):
        fail(f"no database at {database} (set DATABASE_URL)", code=1)
    with opened_database(settings) as engine, Session(engine) as session:
        report = status_report(session=session, msgid=msgid, limit=limit or None)
    if report is None:
        fail(f"no message {msgid!r} is known", code=1)
    click.echo(report)
