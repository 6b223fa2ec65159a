"""``umstrack emulate``: interim bridge to the module's argparse options."""

from __future__ import annotations

import argparse

import click

from sender.emulator import add_arguments, run

from .common import configure_logging


@click.command(
    "emulate",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def command(ctx: click.Context) -> None:
    """Run the local UMS emulator (channels from UMS_CHANNELS)."""
    configure_logging(result_on_stdout=False)
    parser = argparse.ArgumentParser(prog="umstrack emulate")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(ctx.args)))
