"""``umstrack demo``: the whole loop on one machine, for a newcomer."""

from __future__ import annotations

import click

from ..demo import DEFAULT_DATABASE, DEFAULT_SEED, running_demo
from .common import StopSignals, configure_logging


@click.command(
    "demo",
    epilog="Ignores UMS_CHANNELS, API_TOKENS and DATABASE_URL: the demo brings its own "
    "channel, token and database. Progress goes to stderr, the report to stdout.",
)
@click.option(
    "--database-url",
    help=f"where the demo stores everything (default: a new ./{DEFAULT_DATABASE})",
)
@click.option(
    "--seed", type=int, default=DEFAULT_SEED, help=f"emulator outcome seed (default {DEFAULT_SEED})"
)
@click.option("--exit", "exit_", is_flag=True, help="exit after printing instead of serving on")
def command(database_url: str | None, seed: int, exit_: bool) -> None:
    """Start the receiver and the UMS emulator, send sample messages through the real
    sender, and print each message's target statuses and timeline URL."""
    configure_logging(result_on_stdout=True)
    with running_demo(database_url=database_url, seed=seed) as demo:
        click.echo(demo.report)
        if not exit_:
            click.echo(demo.hint())
            with StopSignals() as stop:
                stop.wait()
