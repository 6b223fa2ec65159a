"""Running ``umstrack`` subcommands in this process, as a shell would."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from click.testing import CliRunner, Result

from receiver.cli import main


def invoke(*args: str, env: Mapping[str, str | None], stdin: str | None = None) -> Result:
    """``umstrack ARGS`` with ``env`` over this process's environment (None removes a
    variable): its exit code, stdout and stderr."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(main, list(args), input=stdin, env=env, catch_exceptions=False)
    finally:
        # The command pointed logging at its own stderr: give the test run its own back.
        root.handlers[:] = handlers
        root.setLevel(level)
