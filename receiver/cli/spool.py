"""``umstrack spool status|drain``: what the outage spool holds, and draining it by hand
(the server's workers drain it by themselves once the database answers)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from ..config import Settings
from ..drain import drain
from ..spool import Spool
from .common import configure_logging, fail, print_json
from .database import opened_database

_EPILOG = (
    "Reads DATABASE_URL, SPOOL_DIR and SPOOL_MAX_BYTES. The spool is PostgreSQL's only: "
    "with SQLite, the database is on the local disk already."
)


def _off(settings: Settings) -> str:
    return "SPOOL_DIR=off" if settings.spool_dir is None else "the database is SQLite"


def _spool(settings: Settings) -> Spool:
    spool = Spool.from_settings(settings)
    if spool is None:
        fail(f"no outage spool to drain: {_off(settings)}", code=2)
    return spool


@click.group("spool", epilog=_EPILOG)
def command() -> None:
    """The outage spool: callback batches kept on disk while PostgreSQL was unavailable."""


@command.command("status", epilog=_EPILOG + " Prints JSON.")
def status() -> None:
    """How many batches wait in the spool, how many bytes, and since when."""
    settings = Settings.from_env()
    spool = Spool.from_settings(settings)
    if spool is None:
        print_json({"enabled": False, "why": _off(settings)})
        return
    found = spool.status()
    print_json(
        {
            "enabled": True,
            "directory": str(found.directory),
            "entries": found.entries,
            "bytes": found.bytes,
            "max_bytes": found.max_bytes,
            "held": found.held,
            "oldest": found.oldest.isoformat() if found.oldest else None,
            "oldest_age_seconds": round(found.age_seconds(datetime.now(UTC)), 3),
            "draining": found.draining,
        }
    )


@command.command("drain", epilog=_EPILOG + " Exit 1 when the database cannot be reached.")
@click.option(
    "--held",
    is_flag=True,
    help="Also retry the entries an earlier drain set aside (after fixing what it logged).",
)
def drain_command(held: bool) -> None:
    """Store every spooled batch now, through the same intake as a live one (waits for a
    drain already at work to finish). Prints what it did as JSON."""
    configure_logging(result_on_stdout=True)
    settings = Settings.from_env()
    spool = _spool(settings)
    with opened_database(settings) as engine:
        released = spool.release_held() if held else 0
        done = drain(engine, spool, wait=True)
    left = spool.status()
    print_json(
        {
            "entries": done.entries,
            "records": done.records,
            **dict(sorted(done.outcomes.items())),
            "released": released,
            "held": left.held,
            "left": left.entries,
        }
    )
    if done.stopped:
        fail(f"the drain stopped: {done.stopped}; {left.entries} entries left", code=1)
