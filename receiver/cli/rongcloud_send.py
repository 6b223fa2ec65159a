"""``umstrack rongcloud-send FILE``: validate a RongCloud template private message, send
it and record it."""

from __future__ import annotations

import click

from sender.errors import InvalidMessageError
from sender.rongcloud import preview_template, validate_template

from ..config import Settings
from ..db import make_engine, migrate
from ..sending.rongcloud import RongCloudSender
from .common import configure_logging, fail, print_json, read_json_file, reporting_send_failures


@click.command(
    "rongcloud-send",
    epilog="Reads RONGCLOUD_APP_KEY, RONGCLOUD_APP_SECRET, RONGCLOUD_API_BASE, "
    "RONGCLOUD_BACKUP_API_BASE and DATABASE_URL (sends are recorded there). Exit 0 sent, "
    "1 RongCloud refused or could not be reached, 2 invalid message or configuration.",
)
@click.argument("file")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and print the content each recipient would get; send nothing.",
)
def command(file: str, dry_run: bool) -> None:
    """Validate and send the publish_template.json body in FILE (JSON; - for standard
    input); print the result as JSON, progress on standard error."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    message = read_json_file(file)
    try:
        if dry_run:
            # Needs no credentials and no database: it only checks and renders.
            print_json(preview_template(message))
            return
        validate_template(message, max_recipients=None)  # before touching the database
    except InvalidMessageError as exc:
        fail(f"invalid message: {exc}", code=2)
    engine = make_engine(settings)
    try:
        with reporting_send_failures():
            sender = RongCloudSender.from_settings(settings, engine=engine)
            migrate(settings.database_url)  # sends are recorded in the receiver's database
            outcome = sender.send(message, progress=_show_progress)
    finally:
        engine.dispose()
    print_json(outcome.model_dump(mode="json"))


def _show_progress(text: str) -> None:
    click.echo(f"umstrack: {text}", err=True)
