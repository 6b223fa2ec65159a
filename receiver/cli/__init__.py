"""The ``umstrack`` command line: one click group, one module per subcommand."""

from __future__ import annotations

import os
import signal
import sys
import threading

# Ctrl-C while Python is still loading click, Flask and SQLAlchemy (a second or more)
# would end in a KeyboardInterrupt traceback: until the command starts, it just stops,
# exit 0 for the commands whose normal end is a Ctrl-C, 130 for the others.
_STOPPED_BY_CTRL_C = frozenset({"demo", "emulate", "serve"})


def _stop_quietly(_signum: int, _frame: object) -> None:
    raise SystemExit(0 if sys.argv[1:2] and sys.argv[1] in _STOPPED_BY_CTRL_C else 130)


_RUN_AS_COMMAND = os.path.basename(sys.argv[0]) == "umstrack" or sys.argv[0] == "-m"
if _RUN_AS_COMMAND and threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, _stop_quietly)

from typing import Any  # noqa: E402 (after the handler, on purpose)

import click  # noqa: E402

from ..config import ConfigError  # noqa: E402
from . import (  # noqa: E402
    bench,
    bench_read,
    demo,
    emulate,
    export,
    migrate,
    purge,
    quarantine,
    rongcloud_send,
    send,
    serve,
    spool,
    status,
    withdraw,
)


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
    if signal.getsignal(signal.SIGINT) is _stop_quietly:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # each command's own


_COMMANDS = (
    serve,
    migrate,
    send,
    withdraw,
    status,
    export,
    rongcloud_send,
    emulate,
    demo,
    bench,
    purge,
    quarantine,
    spool,
)
for _module in _COMMANDS:
    main.add_command(_module.command)
main.add_command(bench_read.with_read(bench.command))  # ``bench`` and ``bench read``
