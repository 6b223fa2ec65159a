"""``umstrack migrate``: upgrade the database schema to the newest revision."""

from __future__ import annotations

import logging

import click

from ..config import Settings
from ..db import migrate
from .common import configure_logging
from .database import check_database, reporting_database_errors

log = logging.getLogger(__name__)


@click.command(
    "migrate",
    epilog="Reads DATABASE_URL. Exit 2 when it cannot be used as written, 1 when the "
    "database cannot be reached or migrated.",
)
def command() -> None:
    """Upgrade the database schema to head (what the Procfile's release step does)."""
    configure_logging(result_on_stdout=False)
    settings = Settings.from_env()
    check_database(settings)
    with reporting_database_errors(settings.database_url):
        migrate(settings.database_url)
    log.info("database schema is at head")
