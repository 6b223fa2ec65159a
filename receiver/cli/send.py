"""``umstrack send FILE``: validate a UMS message, send it and record it."""

from __future__ import annotations

import click

from sender.errors import InvalidMessageError

from ..config import Settings
from ..db import make_engine, migrate
from ..sending.request import parse_request
from ..sending.ums import UmsSender
from .common import configure_logging, fail, print_json, read_json_file, reporting_send_failures


@click.command(
    "send",
    epilog="Reads UMS_CHANNELS, UMS_API_BASE, PUBLIC_URL and DATABASE_URL (sends are "
    "recorded there). Exit 0 sent, 1 UMS refused or could not be reached, 2 invalid "
    "message or configuration.",
)
@click.argument("file")
@click.option("--broadcast", is_flag=True, help="Broadcast: no aud_* targets (/v1/broadcast).")
@click.option("--template", is_flag=True, help="A template send (template_id).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate and print each request as it would go out; send and record nothing "
    "(needs no UMS_CHANNELS).",
)
@click.option("--channel", help="channelkey to send with (default: the first of UMS_CHANNELS).")
def command(file: str, broadcast: bool, template: bool, dry_run: bool, channel: str | None) -> None:
    """Validate and send the UMS message in FILE (JSON; - for standard input); print the
    send_id and the msgid(s) as JSON."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    body = read_json_file(file)
    if not dry_run:
        migrate(settings.database_url)  # sends are recorded in the receiver's database
    engine = make_engine(settings)
    try:
        with reporting_send_failures():
            sender = UmsSender.from_settings(settings, engine=engine)
            request = parse_request(
                body, broadcast=broadcast, template=template, channelkey=channel
            )
            outcome = sender.send(request, dry_run=dry_run)
    except InvalidMessageError as exc:
        fail(f"invalid message: {exc} (UMS would answer {exc.code})", code=2)
    finally:
        engine.dispose()
    print_json(outcome.model_dump(mode="json"))
