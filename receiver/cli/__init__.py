"""The ``umstrack`` command line: one click group, one module per subcommand."""

from __future__ import annotations

from typing import Any

import click

from ..config import ConfigError
from . import bench, demo, emulate, migrate, rongcloud_send, send, serve, status, withdraw


class _Group(click.Group):
    """Reports a configuration error (a malformed setting) as one line and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"umstrack: configuration error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="umstrack", prog_name="umstrack")
def main() -> None:
    """Track Jiguang UMS messages: send them, take in their status callbacks, serve
    status timelines.

    Every setting comes from the environment (DATABASE_URL, UMS_CHANNELS, API_TOKENS,
    ...); each command's help names the ones it reads.
    """


for _module in (serve, migrate, send, withdraw, status, rongcloud_send, emulate, demo, bench):
    main.add_command(_module.command)
