"""The ``umstrack`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from sender.sending import ConfigurationError, SendFailed, UmsSender, parse_request
from sender.ums_rules import MessageError

from .config import ConfigError, Settings
from .db import make_engine, migrate
from .report import status_report

log = logging.getLogger("umstrack")
_RESULT_COMMANDS = {"send", "status", "demo", "rongcloud-send"}


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

    send = commands.add_parser("send", help="validate and send a UMS message from a JSON file")
    send.add_argument("file", help="the message as JSON (- for standard input)")
    send.add_argument("--broadcast", action="store_true", help="broadcast: no aud_* targets")
    send.add_argument("--template", action="store_true", help="a template send (template_id)")
    send.add_argument("--dry-run", action="store_true", help="validate only; send nothing")
    send.add_argument("--channel", help="channelkey to send with (default: first of UMS_CHANNELS)")
    send.set_defaults(func=_send)

    status = commands.add_parser(
        "status", help="a message's summary and timeline, read from the database"
    )
    status.add_argument("msgid")
    status.add_argument(
        "--limit", type=int, default=1000, help="timeline rows to show (default 1000; 0: all)"
    )
    status.set_defaults(func=_status)

    from sender import demo, emulator, rongcloud

    rongcloud.add_arguments(
        commands.add_parser(
            "rongcloud-send", help="send a RongCloud template private message from a JSON file"
        )
    )

    emulate = commands.add_parser("emulate", help="run the local UMS emulator")
    emulator.add_arguments(emulate)
    demo_cmd = commands.add_parser(
        "demo", help="emulator, receiver and sample sends: watch timelines fill"
    )
    demo.add_arguments(demo_cmd)

    bench = commands.add_parser("bench", help="benchmark callback intake against a server")
    from .bench import add_arguments

    add_arguments(bench)

    args = parser.parse_args(argv)
    # Commands whose standard output is their result (JSON, a report) log to stderr.
    prints_result = args.command in _RESULT_COMMANDS
    logging.basicConfig(
        stream=sys.stderr if prints_result else sys.stdout,
        level=logging.INFO,
        format="%(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if not prints_result:
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


def _send(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"umstrack: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        migrate(settings.database_url)  # sends are recorded in the receiver's database
    engine = make_engine(settings)
    try:
        sender = UmsSender.from_settings(settings, engine=engine)
        request = parse_request(
            body, broadcast=args.broadcast, template=args.template, channelkey=args.channel
        )
        outcome = sender.send(request, dry_run=args.dry_run)
    except MessageError as exc:
        print(f"umstrack: invalid message: {exc} (UMS would answer {exc.code})", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"umstrack: cannot send: {exc}", file=sys.stderr)
        return 2
    except SendFailed as exc:
        print(json.dumps(exc.outcome.as_dict(), ensure_ascii=False, indent=2))
        print(f"umstrack: send failed: {exc.error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    return 0


def _status(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    database = make_url(settings.database_url).database
    if settings.database_url.startswith("sqlite") and database and not Path(database).exists():
        print(f"umstrack: no database at {database} (set DATABASE_URL)", file=sys.stderr)
        return 1
    engine = make_engine(settings)
    try:
        with Session(engine) as session:
            report = status_report(
                session=session, msgid=args.msgid, limit=args.limit if args.limit > 0 else None
            )
    except SQLAlchemyError as exc:
        print(f"umstrack: cannot read the database: {exc.__cause__ or exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if report is None:
        print(f"umstrack: no message {args.msgid!r} is known", file=sys.stderr)
        return 1
    print(report)
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
