"""``umstrack serve``: migrate, then run the web app under gunicorn."""

from __future__ import annotations

import logging
import os
import sys

import click

from ..config import Settings
from ..db import migrate
from .common import configure_logging
from .database import check_database, reporting_database_errors

log = logging.getLogger(__name__)


@click.command(
    "serve",
    epilog="Reads DATABASE_URL, HOST, PORT, UMS_CHANNELS, API_TOKENS, PUBLIC_URL, "
    "UMS_API_BASE, MAX_BODY_BYTES, SQLITE_BUSY_TIMEOUT_MS, FORWARDED_ALLOW_IPS, "
    "STATEMENT_TIMEOUT_MS, SECRET_KEY, METRICS_TOKEN, STALE_AFTER, PROMETHEUS_MULTIPROC_DIR, "
    "WEB_CONCURRENCY, GUNICORN_THREADS and GUNICORN_ACCESSLOG. "
    "Exit 2 for a bad setting, 1 when the database cannot be reached or migrated.",
)
@click.option(
    "--host",
    help="Address to bind (default $HOST, else 127.0.0.1: this machine only); 0.0.0.0 "
    "for every interface.",
)
@click.option("--port", type=click.IntRange(1, 65535), help="Port to bind (default $PORT or 8000).")
@click.option("--workers", type=click.IntRange(min=1), help="Gunicorn workers ($WEB_CONCURRENCY).")
def command(host: str | None, port: int | None, workers: int | None) -> None:
    """Apply migrations, then serve the web app under gunicorn (SQLite by default); the
    line "umstrack: ready on URL" on stderr says when it answers."""
    configure_logging(result_on_stdout=False)
    settings = Settings.from_env()
    check_database(settings)
    with reporting_database_errors(settings.database_url):
        migrate(settings.database_url)
    port = port or settings.port
    host = host or settings.host or "127.0.0.1"
    # The app reads the address it serves on (an open /metrics only on loopback).
    os.environ["HOST"] = host
    address = f"[{host}]" if ":" in host else host  # an IPv6 address
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "receiver:create_app()",
        "--config",
        "python:receiver.gunicorn_config",
        "--bind",
        f"{address}:{port}",
    ]
    if workers:
        argv += ["--workers", str(workers)]
    log.info("starting on %s:%d (%s)", address, port, settings.database_url.split("://")[0])
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # gunicorn replaces this process: signals reach it directly
