"""``umstrack bench``: drive callback intake like a big broadcast and print figures."""

from __future__ import annotations

import tempfile

import click
from sqlalchemy.exc import SQLAlchemyError

from ..bench import (
    BENCH_CHANNEL,
    BenchOptions,
    Checked,
    Figures,
    ceiling_report,
    check,
    local_server,
    local_servers,
    measure_ceiling,
    run,
)
from ..bench_compare import compare_instances, fresh_databases
from ..bench_purge import run_during_purge
from ..bench_workload import WORKLOADS
from ..ceiling import Ceiling
from ..config import Settings, normalize_database_url
from .common import configure_logging, fail
from .database import check_database


@click.command(
    "bench",
    epilog="Reads UMS_CHANNELS (for --url without --channel). A server started here "
    "listens on 127.0.0.1. Exit 1 when any batch was not acknowledged with 200, the check "
    "of what was stored or the comparison found a difference, or the database cannot be "
    "reached; 2 for a bad setting.",
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
    help="broadcast: one message's callbacks; messages: a new msgid every batch; "
    "mixed: each recipient's records spread over 6 batches, out of order, with failures "
    "and repeats.",
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
@click.option(
    "--compare-instances",
    "compare",
    callback=lambda _ctx, _param, value: _instance_counts(value),
    metavar="A,B",
    help="Post the same --batches N batches on A servers, then on B, each run into a "
    "fresh database (temporary SQLite files, or databases made on --database-url's "
    "PostgreSQL server and dropped after); print both runs' figures and compare every "
    "message, event and target they left (exit 1 on any difference). Needs --batches: "
    "with --seconds the runs would post different amounts. --workload mixed tests the "
    "stage rule; the others never have two batches write one target.",
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
    compare: tuple[int, int] | None,
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
    if compare:
        if instances != 1:
            fail("--compare-instances names each run's servers (no --instances)", code=2)
        _compare(compare, database_url, url, expired, channel, workers, options)
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
    rate, line = ceiling_report(ceilings)
    click.echo(line)
    click.echo(figures.report(rate))
    if checked is not None:
        click.echo(checked.report())
    raise SystemExit(1 if figures.errors or (checked and not checked.holds) else 0)


def _instance_counts(value: str | None) -> tuple[int, int] | None:
    """``--compare-instances A,B``: two counts of servers, each at least 1."""
    if value is None:
        return None
    try:
        counts = tuple(int(part) for part in value.split(","))
    except ValueError:
        counts = ()
    if len(counts) != 2 or min(counts) < 1:
        raise click.BadParameter(f"{value!r} is not two counts of servers, such as 1,2")
    return counts[0], counts[1]


def _compare(
    counts: tuple[int, int],
    database_url: str | None,
    url: str | None,
    expired: int | None,
    channel: str | None,
    workers: int | None,
    options: BenchOptions,
) -> None:
    """``--compare-instances``: both runs, their comparison, and the exit status."""
    if url or expired:
        fail("--compare-instances starts its own servers (no --url, no --during-purge)", code=2)
    if options.batches is None:
        fail("--compare-instances needs --batches N: both runs must post the same", code=2)
    if database_url:
        database_url = normalize_database_url(database_url)
        if not database_url.startswith("postgresql"):
            fail("--compare-instances makes its databases on PostgreSQL, or none given: "
                 "temporary SQLite files", code=2)  # fmt: skip
        check_database(Settings(database_url=database_url))  # unreachable: exit 1
    try:
        with fresh_databases(database_url, 2) as urls:
            comparison = compare_instances(urls, counts, channel or BENCH_CHANNEL, workers, options)
    except RuntimeError as exc:  # a server exited, or never answered
        fail(f"the receiver to bench did not start: {exc}", code=1)
    except SQLAlchemyError as exc:  # the databases could not be made
        fail(f"could not make the databases to compare in: {exc}", code=1)
    click.echo(
        f"workload     {options.workload}: the same {options.batches} batches of "
        f"{options.batch_size} on {counts[0]} and on {counts[1]} servers, each run into a "
        f"fresh database; {options.posters} posters, after {options.warmup:g} s of warm-up"
    )
    click.echo(comparison.report())
    raise SystemExit(0 if comparison.holds else 1)


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
