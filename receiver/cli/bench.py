"""``umstrack bench``: drive callback intake like a big broadcast and print figures."""

from __future__ import annotations

import tempfile

import click

from ..bench import BENCH_CHANNEL, BenchOptions, local_server, run, run_during_purge
from ..config import Settings, normalize_database_url
from .common import configure_logging, fail
from .database import check_database


@click.command(
    "bench",
    epilog="Reads UMS_CHANNELS (for --url without --channel). A server started here "
    "listens on 127.0.0.1. Exit 1 when any batch was not acknowledged with 200 or the "
    "database cannot be reached, 2 for a bad setting.",
)
@click.option("--url", help="Base URL of a running receiver (default: start one here).")
@click.option(
    "--database-url",
    help="DATABASE_URL of the server started here (default: a temporary SQLite file).",
)
@click.option("--workers", type=click.IntRange(min=1), help="Gunicorn workers to start.")
@click.option(
    "--channel",
    help="channelkey:mastersecret to authenticate with (default: the first of "
    "UMS_CHANNELS, or a bench channel for a server started here).",
)
@click.option("--posters", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--batches", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=100, show_default=True)
@click.option(
    "--during-purge",
    "expired",
    type=click.IntRange(min=1),
    help="Also store this many expired events, then time intake again while a purge "
    "removes them; print both rates and their ratio (a server started here only).",
)
def command(
    url: str | None,
    database_url: str | None,
    workers: int | None,
    channel: str | None,
    posters: int,
    batches: int,
    batch_size: int,
    warmup: int,
    expired: int | None,
) -> None:
    """Post one broadcast's callbacks in batches from concurrent posters; print
    events/s and acknowledgement latency p50/p99."""
    configure_logging(result_on_stdout=False)
    settings = Settings.from_env()  # a bad setting: one line, exit 2
    options = BenchOptions(posters=posters, batches=batches, batch_size=batch_size, warmup=warmup)
    if database_url:  # missing or unreachable: one line, exit 1
        check_database(Settings(database_url=normalize_database_url(database_url)))
    if expired:
        if url:
            fail("--during-purge needs a server started here (no --url)", code=2)
        with tempfile.TemporaryDirectory() as tmp:
            database_url = database_url or f"sqlite:///{tmp}/bench.db"
            with local_server(database_url, BENCH_CHANNEL, workers) as url:
                measured = run_during_purge(url, BENCH_CHANNEL, options, database_url, expired)
        click.echo(f"server       {url}")
        click.echo(f"posters      {posters}, batch size {batch_size}")
        click.echo(measured.report())
        failed = measured.alone.errors or measured.during.errors
        raise SystemExit(1 if failed else 0)
    if url:
        if channel is None and settings.channels:
            channel = ":".join(next(iter(settings.channels.items())))
        if not channel or ":" not in channel:
            fail("give --channel channelkey:mastersecret", code=2)
        figures = run(url, channel, options)
    else:
        channel = channel or BENCH_CHANNEL
        try:
            with local_server(database_url, channel, workers) as url:
                figures = run(url, channel, options)
        except RuntimeError as exc:  # the server exited, or never answered
            fail(f"the receiver to bench did not start: {exc}", code=1)
    click.echo(f"server       {url}")
    click.echo(f"posters      {posters}, batch size {batch_size}")
    click.echo(figures.report())
    raise SystemExit(1 if figures.errors else 0)
