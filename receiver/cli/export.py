"""``umstrack export MSGID``: a message's targets or events as CSV or NDJSON."""

from __future__ import annotations

from typing import Literal

import click
from sqlmodel import Session

from ..config import Settings
from ..export import message_export
from .common import configure_logging, fail, missing_sqlite_file
from .database import opened_database


@click.command("export", epilog="Reads DATABASE_URL.")
@click.argument("msgid")
@click.option(
    "--what",
    type=click.Choice(["targets", "events"]),
    default="targets",
    show_default=True,
    help="Each target's current status, or every event (the timeline).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "ndjson"]),
    default="csv",
    show_default=True,
    help="csv: UTF-8 with a byte order mark, a header row; ndjson: one JSON item a line.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File to write; standard output by default.",
)
def command(msgid: str, what: str, fmt: Literal["csv", "ndjson"], output: str) -> None:
    """Write every one of MSGID's targets or events, as the API's export gives them,
    straight from the database."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    if database := missing_sqlite_file(settings):
        fail(f"no database at {database} (set DATABASE_URL)", code=1)
    with opened_database(settings) as engine, Session(engine) as session:
        chunks = message_export(session=session, msgid=msgid, what=what, fmt=fmt)
        if chunks is None:
            fail(f"no message {msgid!r} is known", code=2)
        try:
            # Bytes, so the file is UTF-8 whatever the terminal's encoding is.
            with click.open_file(output, "wb") as stream:
                for chunk in chunks:
                    stream.write(chunk.encode())
        except OSError as exc:
            fail(f"cannot write {output}: {exc}", code=1)
