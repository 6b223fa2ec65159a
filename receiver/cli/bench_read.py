"""``umstrack bench read``: reads at 1, 3 and 10 million events (see
:mod:`receiver.bench_read`); and ``umstrack bench`` made a group that holds it."""

from __future__ import annotations

import tempfile
from typing import Any

import click
from sqlalchemy import text

from ..bench_read import (
    READ_CHANNELKEY,
    READ_TOKEN,
    grow,
    measure,
    report,
    since_for,
    stored,
)
from ..config import Settings, normalize_database_url
from ..db import make_engine, migrate
from ..local import running_server
from .common import configure_logging, fail
from .database import check_database, reporting_database_errors


def _sizes(_ctx: click.Context, _param: click.Parameter, raw: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in raw.split(","))
    except ValueError:
        raise click.BadParameter(f"{raw!r}: give event counts separated by commas") from None
    if any(size < 1 for size in sizes) or list(sizes) != sorted(set(sizes)):
        raise click.BadParameter(f"{raw!r}: give positive event counts, growing")
    return sizes


@click.command(
    "read",
    epilog="A server started here listens on 127.0.0.1. Exit 1 when a read fails or the "
    "database cannot be reached, 2 for a bad setting.",
)
@click.option(
    "--database-url",
    help="Database to fill and read (default: a temporary SQLite file). One that holds "
    "the data set already is grown, not reloaded.",
)
@click.option(
    "--events",
    "sizes",
    default="1000000,3000000,10000000",
    show_default=True,
    callback=_sizes,
    help="Measure when the data set holds each of these many events, in order.",
)
@click.option(
    "--broadcast-targets",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Recipients of the big broadcast (the rest are 20-recipient messages).",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=3),
    default=50,
    show_default=True,
    help="Requests per read (pages: four times as many).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Gunicorn workers of the server.")
def read_command(
    database_url: str | None,
    sizes: tuple[int, ...],
    broadcast_targets: int,
    repeats: int,
    workers: int | None,
) -> None:
    """Fill a database through the intake with one big broadcast among many small
    messages and, at each size, time reads one request at a time over keep-alive: the
    broadcast's summary, timeline and targets pages, the message list by status, param
    and time; each median also as a multiple of /healthz on the same connection."""
    configure_logging(result_on_stdout=False)
    Settings.from_env()  # a bad setting: one line, exit 2
    with tempfile.TemporaryDirectory() as tmp:
        url = normalize_database_url(database_url or f"sqlite:///{tmp}/bench-read.db")
        settings = Settings(database_url=url)
        check_database(settings)
        with reporting_database_errors(url):
            migrate(url)
        engine = make_engine(settings, maintenance=True)
        env = {
            "DATABASE_URL": url,
            "UMS_CHANNELS": f"{READ_CHANNELKEY}:benchreadsecret",
            "API_TOKENS": READ_TOKEN,
            "GUNICORN_ACCESSLOG": "",
        }
        args = ("--workers", str(workers)) if workers else ()
        try:
            with reporting_database_errors(url), running_server(env, args=args) as server:
                click.echo(f"server       {server} on {engine.dialect.name}")
                held = stored(engine, broadcast_targets)
                for size in sizes:
                    if held.events >= size and size != sizes[-1]:
                        click.echo(f"--- skipped {size:,}: {held.events:,} events held already")
                        continue
                    held = grow(engine, held, size, broadcast_targets)
                    _settle(engine)
                    since = since_for(engine, held)
                    click.echo(report(held.events, measure(server, held, repeats, since, engine)))
        except RuntimeError as exc:
            fail(str(exc), code=1)
        finally:
            engine.dispose()


def _settle(engine: Any) -> None:
    """On PostgreSQL, what autovacuum does in time after a bulk load (statistics, the
    visibility map that index-only scans rely on), done now so that reads are measured
    as they settle. SQLite is read as the service leaves it (it gathers no statistics)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text("VACUUM ANALYZE message, event, target")
            )


def with_read(bench: click.Command) -> click.Group:
    """``umstrack bench`` as a group: its own options run the intake benchmark, and
    ``umstrack bench read`` the read benchmark."""
    callback = bench.callback
    assert callback is not None

    @click.pass_context
    def run_unless_read(ctx: click.Context, /, **options: Any) -> Any:
        if ctx.invoked_subcommand is None:
            return ctx.invoke(callback, **options)
        return None

    return click.Group(
        name=bench.name,
        commands={"read": read_command},
        params=bench.params,
        callback=run_unless_read,
        help=bench.help,
        epilog=bench.epilog,
        invoke_without_command=True,
        subcommand_metavar="[read]",
    )
