"""``umstrack bench``: drive callback intake like a big broadcast and print figures."""

from __future__ import annotations

import tempfile

import click

from ..bench import (
    BENCH_CHANNEL,
    WORKLOADS,
    BenchOptions,
    Checked,
    Figures,
    check,
    local_server,
    local_servers,
    measure_ceiling,
    run,
)
from ..bench_purge import run_during_purge
from ..ceiling import Ceiling
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
@click.option(
    "--workers", type=click.IntRange(min=1), help="Gunicorn workers of each server started."
)
@click.option(
    "--instances",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Servers to start on the one database, the posters spread over them.",
)
@click.option(
    "--channel",
    help="channelkey:mastersecret to authenticate with (default: the first of "
    "UMS_CHANNELS, or a bench channel for a server started here).",
)
@click.option(
    "--workload",
    type=click.Choice(WORKLOADS),
    default="broadcast",
    show_default=True,
    help="broadcast: one message's callbacks; messages: a new msgid every batch.",
)
@click.option("--posters", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="How long to time intake, after the warm-up.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Seconds of posting before the timing starts.",
)
@click.option(
    "--batches",
    type=click.IntRange(min=1),
    help="Time exactly this many batches instead of --seconds.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=100, show_default=True)
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
    instances: int,
    channel: str | None,
    workload: str,
    posters: int,
    seconds: float,
    warmup: float,
    batches: int | None,
    batch_size: int,
    expired: int | None,
) -> None:
    """Post callbacks in batches from concurrent posters; print events/s, acknowledgement
    latency p50/p99, and the ratio to the database's own bulk-load rate (PostgreSQL's
    COPY, SQLite's executemany) into a table shaped like event, measured in the same run
    before and after."""
    configure_logging(result_on_stdout=False)
    settings = Settings.from_env()  # a bad setting: one line, exit 2
    options = BenchOptions(
        posters=posters,
        batch_size=batch_size,
        seconds=seconds,
        warmup=warmup,
        batches=batches,
        workload=workload,
    )
    if database_url:  # missing or unreachable: one line, exit 1
        database_url = normalize_database_url(database_url)
        check_database(Settings(database_url=database_url))
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
    with tempfile.TemporaryDirectory() as tmp:
        if url:
            if channel is None and settings.channels:
                channel = ":".join(next(iter(settings.channels.items())))
            if not channel or ":" not in channel:
                fail("give --channel channelkey:mastersecret", code=2)
            urls = [url]
            run_figures = _measured(urls, channel, options, database_url)
        else:
            channel = channel or BENCH_CHANNEL
            database_url = database_url or f"sqlite:///{tmp}/bench.db"
            try:
                with local_servers(database_url, channel, workers, instances=instances) as urls:
                    run_figures = _measured(urls, channel, options, database_url)
            except RuntimeError as exc:  # a server exited, or never answered
                fail(f"the receiver to bench did not start: {exc}", code=1)
    figures, ceilings, checked = run_figures
    timed = f"{batches} batches" if batches else f"{seconds:g} s"
    click.echo(f"servers      {', '.join(urls)}")
    click.echo(
        f"workload     {workload}: {posters} posters, batches of {batch_size}, "
        f"{timed} after {warmup:g} s of warm-up"
    )
    rate = None
    if ceilings:
        rate = sum(c.rate for c in ceilings) / len(ceilings)
        click.echo(
            f"ceiling      {ceilings[0].how} {rate:,.0f} rows/s ("
            + ", ".join(f"{c.rate:,.0f}" for c in ceilings)
            + f" before and after; {ceilings[0].rows:,} rows into a table shaped like event)"
        )
    else:
        click.echo("ceiling      not measured (give --database-url with --url)")
    click.echo(figures.report(rate))
    if checked is not None:
        click.echo(checked.report())
    raise SystemExit(1 if figures.errors or (checked and not checked.holds) else 0)


def _measured(
    urls: list[str], channel: str, options: BenchOptions, database_url: str | None
) -> tuple[Figures, list[Ceiling], Checked | None]:
    """The run between two measures of the ceiling, and a check of what it stored (when
    the database is known)."""
    if database_url is None:
        return run(urls, channel, options)[0], [], None
    before = measure_ceiling(database_url, channel, options)
    figures, workload = run(urls, channel, options)
    after = measure_ceiling(database_url, channel, options)
    return figures, [before, after], check(database_url, workload)
