"""The ``umstrack`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .config import ConfigError, Settings
from .db import migrate

log = logging.getLogger("umstrack")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``umstrack`` console script."""
    parser = argparse.ArgumentParser(prog="umstrack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations, run the web app under gunicorn")
    serve.add_argument("--port", type=int, help="port to bind (default $PORT or 8000)")
    serve.add_argument("--workers", type=int, help="gunicorn workers (default $WEB_CONCURRENCY)")
    serve.set_defaults(func=_serve)

    migrate_cmd = commands.add_parser("migrate", help="upgrade the database schema to head")
    migrate_cmd.set_defaults(func=_migrate)

    bench = commands.add_parser("bench", help="benchmark callback intake against a server")
    from .bench import add_arguments

    add_arguments(bench)

    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)  # "Running upgrade"
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"umstrack: configuration error: {exc}", file=sys.stderr)
        return 2
    return result


def _migrate(_args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    migrate(settings.database_url)
    log.info("database schema is at head")
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    migrate(settings.database_url)
    port = args.port or settings.port
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "receiver:create_app()",
        "--config",
        "python:receiver.gunicorn_config",
        "--bind",
        f"0.0.0.0:{port}",
    ]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    log.info("serving on port %d (%s)", port, settings.database_url.split("://")[0])
    sys.stdout.flush()
    os.execv(sys.executable, argv)  # gunicorn replaces this process: signals reach it directly
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
