"""Opening DATABASE_URL for a command, with one line instead of a traceback when that
fails: exit 2 when the URL cannot be used as written (not a URL, an unknown scheme, no
driver for it), exit 1 when the database cannot be reached, opened or migrated."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from ..config import Settings, safe_url
from ..db import make_engine
from .common import fail, printable


def checked_engine(settings: Settings, *, maintenance: bool = False) -> Engine:
    """An engine on DATABASE_URL that has answered once; else say why and exit."""
    try:
        engine = make_engine(settings, maintenance=maintenance)
    except (ArgumentError, ModuleNotFoundError) as exc:  # the dialect, or its driver
        fail(
            f"DATABASE_URL {safe_url(settings.database_url)} cannot be used: "
            f"{_one_line(exc, settings.database_url)}",
            code=2,
        )
    with reporting_database_errors(settings.database_url), engine.connect():
        pass
    return engine


@contextmanager
def opened_database(settings: Settings, *, maintenance: bool = False) -> Iterator[Engine]:
    """An engine on DATABASE_URL that has answered once, disposed when the block ends;
    a failure to reach it, before or in the block, is said in one line (exit 1)."""
    engine = checked_engine(settings, maintenance=maintenance)
    try:
        with reporting_database_errors(settings.database_url):
            yield engine
    finally:
        engine.dispose()


def check_database(settings: Settings) -> None:
    """Exit saying why, unless DATABASE_URL's database answers."""
    checked_engine(settings, maintenance=True).dispose()


@contextmanager
def reporting_database_errors(database_url: str) -> Iterator[None]:
    """Exit 1 with one line when the block fails for the database's sake (it cannot
    be reached, refuses us, or holds a schema the migrations do not know)."""
    from alembic.util import CommandError

    try:
        yield
    except DBAPIError as exc:
        fail(f"database {safe_url(database_url)}: {_one_line(exc.orig, database_url)}", code=1)
    except CommandError as exc:
        fail(f"cannot migrate {safe_url(database_url)}: {_one_line(exc, database_url)}", code=1)


def _one_line(exc: BaseException | None, database_url: str) -> str:
    """The error's text on one line, printable, and never with the URL's password."""
    text = " ".join(str(exc).split())
    try:
        password = make_url(database_url).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return printable(text)
