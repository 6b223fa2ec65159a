"""``umstrack demo``: interim bridge to the module's argparse options."""

from __future__ import annotations

import argparse

import click

from receiver.demo import add_arguments, run

from .common import configure_logging


@click.command(
    "demo",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def command(ctx: click.Context) -> None:
    """Emulator, receiver and sample sends: watch timelines fill."""
    configure_logging(result_on_stdout=True)
    parser = argparse.ArgumentParser(prog="umstrack demo")
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args(ctx.args)))
