"""``umstrack demo``: the whole loop on one machine, for a newcomer."""

from __future__ import annotations

import logging
import threading
from types import FrameType

import click

from ..demo import DEFAULT_DATABASE, DEFAULT_SEED, running_demo
from ..local import Stopped
from .common import StopSignals, configure_logging

log = logging.getLogger(__name__)


class _DemoSignals(StopSignals):
    """StopSignals that also set ``stop``, which the demo's steps look at as they go."""

    def __init__(self) -> None:
        super().__init__()
        self.stop = threading.Event()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        super()._on_signal(signum, frame)
        self.stop.set()


@click.command(
    "demo",
    epilog="Ignores UMS_CHANNELS, API_TOKENS and DATABASE_URL: the demo brings its own "
    "channel, token and database. Progress goes to stderr, the report to stdout. Ctrl-C "
    "(SIGINT) or SIGTERM at any moment stops it, exit 0.",
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
    """Start the receiver and the UMS emulator on 127.0.0.1, send sample messages through
    the real sender, and print each message's target statuses and timeline URL."""
    configure_logging(result_on_stdout=True)
    # Caught from the first step on, so that a Ctrl-C never lands in the middle of
    # starting or stopping a server: the steps see it and the servers stop in order.
    signals = _DemoSignals()
    with signals:
        try:
            with running_demo(database_url=database_url, seed=seed, stop=signals.stop) as demo:
                click.echo(demo.report)
                if not exit_:
                    click.echo(demo.hint())
                    signals.wait()
        except Stopped:
            log.info("stopped before the report")
    log.info("demo stopped")
