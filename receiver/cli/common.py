"""What the subcommands share: logging set-up, reading a JSON input, printing a result,
waiting for a stop signal."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final, NoReturn

import click
from sqlalchemy.engine import make_url

from ..config import ConfigError, Settings
from ..sending.outcome import SendFailedError
from ..text import printable

__all__ = ["printable"]  # escapes what came from outside before it is printed

log = logging.getLogger(__name__)


def missing_sqlite_file(settings: Settings) -> str | None:
    """The path of the configured SQLite database when that file does not exist (a
    command that only reads would create an empty one), else None."""
    if not settings.database_url.startswith("sqlite"):
        return None  # (and a URL that is none: the engine says what is wrong with it)
    database = make_url(settings.database_url).database
    if database and not Path(database).exists():
        return database
    return None


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


@contextmanager
def reporting_send_failures() -> Iterator[None]:
    """Exit 2 when the service is not set up to send; when a request fails, print what
    went out (the outcome so far) and exit 1."""
    try:
        yield
    except ConfigError as exc:
        fail(f"cannot send: {exc}", code=2)
    except SendFailedError as exc:
        print_json(exc.outcome.model_dump(mode="json"))
        fail(f"send failed: {exc.error}", code=1)


def fail(message: str, *, code: int) -> NoReturn:
    """Say ``umstrack: message`` on stderr and exit with ``code``."""
    click.echo(f"umstrack: {message}", err=True)
    raise SystemExit(code)


class StopSignals:
    """SIGINT and SIGTERM, caught while the ``with`` block runs; the handlers that
    were there before come back after it."""

    _SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._caught = threading.Event()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self._SIGNALS}
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def wait(self) -> None:
        """Block until one of the signals arrives."""
        # Short waits: the handler runs on the main thread between them.
        while not self._caught.wait(0.5):
            pass

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._caught.set()
