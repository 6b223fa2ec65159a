"""``umstrack purge``: remove the messages older than RETENTION_DAYS with their events
and targets."""

from __future__ import annotations

import click

from ..config import Settings
from ..retention import purge
from .common import configure_logging, fail, missing_sqlite_file, print_json
from .database import opened_database


@click.command(
    "purge",
    epilog="Reads DATABASE_URL and RETENTION_DAYS. Safe while the server runs; a second "
    "purge started meanwhile waits for the first. Prints what went as JSON. Exit 2 for a "
    "bad setting, 1 when the database cannot be reached.",
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
        fail(f"no database at {missing}", code=1)
    # Maintenance: no statement timeout (each batch is bounded; a partition's lock wait
    # has its own limit).
    with opened_database(settings, maintenance=True) as engine:
        result = purge(engine, days=days, dry_run=dry_run)
    print_json(result.as_dict())
