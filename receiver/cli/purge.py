"""``umstrack purge``: remove the messages older than RETENTION_DAYS with their events
and targets."""

from __future__ import annotations

import click

from ..config import Settings
from ..db import make_engine
from ..retention import purge
from .common import configure_logging, fail, missing_sqlite_file, print_json


@click.command(
    "purge",
    epilog="Reads DATABASE_URL and RETENTION_DAYS. Safe while the server runs; a second "
    "purge started meanwhile waits for the first. Prints what went as JSON.",
)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    help="Keep this many whole UTC days before today (default $RETENTION_DAYS).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
def command(days: int | None, dry_run: bool) -> None:
    """Remove the messages whose UTC day is more than RETENTION_DAYS days before today,
    with their events and targets (and quarantined input and idempotency keys as old)."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    days = days or settings.retention_days
    if days is None:
        fail("nothing to purge by: set RETENTION_DAYS or give --days", code=2)
    missing = missing_sqlite_file(settings)
    if missing:
        fail(f"no database at {missing}", code=2)
    engine = make_engine(settings)
    try:
        result = purge(engine, days=days, dry_run=dry_run)
    finally:
        engine.dispose()
    print_json(result.as_dict())
