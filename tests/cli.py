"""Running ``umstrack`` subcommands in this process, as a shell would."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from click.testing import CliRunner, Result

from receiver.cli import main


def invoke(*args: str, env: Mapping[str, str | None], stdin: str | None = None) -> Result:
    """``umstrack ARGS`` with ``env`` over this process's environment (None removes a
    variable): its exit code, stdout and stderr."""
    with restored_logging():
        return CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Give the test run its logging back after a command pointed it elsewhere."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
