"""What the subcommands share: logging set-up, reading a JSON input, printing a result."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, NoReturn

import click

log = logging.getLogger(__name__)


def configure_logging(*, result_on_stdout: bool) -> None:
    """Log lines to stderr when the command's standard output is its result (JSON, a
    report), else to stdout as a web process does."""
    logging.basicConfig(
        stream=sys.stderr if result_on_stdout else sys.stdout,
        level=logging.INFO,
        format="%(message)s",
        force=True,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not result_on_stdout:
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # "Running upgrade"


def read_json_file(path: str) -> Any:
    """The JSON document in ``path`` (``-``: standard input); exit 2 saying why not."""
    try:
        with click.open_file(path, encoding="utf-8") as stream:
            return json.loads(stream.read())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}", code=2)


def print_json(value: Any) -> None:
    """Print a command's result: indented JSON, non-ASCII text as it is."""
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def fail(message: str, *, code: int) -> NoReturn:
    """Say ``umstrack: message`` on stderr and exit with ``code``."""
    click.echo(f"umstrack: {message}", err=True)
    raise SystemExit(code)
