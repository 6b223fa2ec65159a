"""``umstrack rongcloud-send``: interim bridge to the module's argparse options."""

from __future__ import annotations

import argparse

import click

from receiver.sending.rongcloud import add_arguments, run

from .common import configure_logging


@click.command(
    "rongcloud-send",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def command(ctx: click.Context) -> None:
    """Send a RongCloud template private message from a JSON file."""
    configure_logging(result_on_stdout=True)
    parser = argparse.ArgumentParser(prog="umstrack rongcloud-send")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(ctx.args)))
