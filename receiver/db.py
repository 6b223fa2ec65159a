"""Engine, per-request session and schema migrations."""

from __future__ import annotations

import fcntl
import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app, g
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session

import migrations

from .config import Settings
from .sqlite_wal import checkpoint_soon, sync_wal

# Execution option asking SQLite to take the write lock when the transaction
# starts. A deferred transaction that reads, then writes, cannot wait for the
# lock (SQLite fails it at once to avoid deadlock); an immediate one waits for up
# to busy_timeout like any other writer.
SQLITE_BEGIN = "sqlite_begin"
# WAL pages (4 KiB each) after which a SQLite commit checkpoints the WAL into the
# database in its writer's turn. Each writer's process checkpoints it after every commit
# outside the turn (receiver.sqlite_wal), so this one finds little left to copy; it
# makes sure the WAL starts over (which it can only when all of it was copied and no
# writer added to it since) however far behind those fell. At SQLite's default, 1,000
# pages, the checkpoints in the turn cost a fifth of SQLite's intake rate.
WAL_CHECKPOINT_PAGES = 4000


def make_engine(settings: Settings, *, maintenance: bool = False) -> Engine:
    """Create the engine for the configured database. On PostgreSQL its statements stop
    after ``settings.statement_timeout_ms``, unless it is a ``maintenance`` engine
    (migrations, purges), whose statements may rightly run long."""
    url = settings.database_url
    # Errors and logs never show a statement's parameters: phone numbers, user ids.
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            hide_parameters=True,
        )
        _configure_sqlite(engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # A database cut off by the network, not refusing, must still fail in seconds
        # (then intake spools): a new connection gives up after 5 s, and one in the pool
        # whose packets go unacknowledged for 10 s (libpq's tcp_user_timeout) is dropped
        # instead of waiting out the kernel's retransmissions, a quarter of an hour.
        connect_args.update(connect_timeout=5, tcp_user_timeout=10_000)
    engine = create_engine(url, pool_size=5, connect_args=connect_args, hide_parameters=True)
    _ping_when_idle(engine)
    if engine.dialect.name == "postgresql":
        timeout = None if maintenance else settings.statement_timeout_ms
        event.listen(engine, "connect", functools.partial(_session_settings, timeout=timeout))
    return engine


# A pooled connection that rested longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Replace, on checkout, a pooled connection that died while it rested (the database
    restarted, a proxy dropped it), so that the app recovers by itself when the database
    comes back. Unlike ``pool_pre_ping``, a connection back in the pool within the last
    PING_AFTER_IDLE_SECONDS is not pinged: under load (a batch every few milliseconds
    per connection) that saves a round trip and a query on every request. A connection
    that dies while in steady use fails its request (spooled, or 503), and the pool
    then replaces every connection it holds."""

    @event.listens_for(engine, "checkin")
    def _rested_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < PING_AFTER_IDLE_SECONDS:
            return  # new, or just used
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # noqa: BLE001 (whatever failed, the connection is not usable)
            alive = False
        if not alive:
            raise DisconnectionError()  # the pool retries with a new connection


def _session_settings(dbapi_connection: Any, _record: Any, *, timeout: int | None) -> None:
    with dbapi_connection.cursor() as cursor:
        # A query stuck behind a lock or scanning far too much gives up, and frees its
        # connection and worker, instead of holding them until the client has gone.
        # Set here rather than in the connection's options, which the URL may hold.
        cursor.execute(f"SET statement_timeout = {int(timeout or 0)}")
        # PostgreSQL's JIT compiles the plan of a summary over a big broadcast's targets
        # for longer than the query then runs (measured: 125 ms of a 390 ms summary).
        cursor.execute("SET jit = off")
        # Times come back in UTC whatever the server's zone: a time late on 9999-12-31
        # UTC is already in the year 10000 in Asia/Shanghai, which Python cannot hold.
        cursor.execute("SET TimeZone = 'UTC'")
    dbapi_connection.commit()


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer, and several gunicorn workers can
        # write one file, each waiting its turn for up to busy_timeout.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # A commit writes its WAL frames without waiting for the disk: the writer
        # that committed waits for them (sync_wal) after it has handed on the writer
        # turn, before it answers, so that what is answered survives a power loss and
        # the next writer's turn overlaps this one's wait. WAL with NORMAL never
        # corrupts the database; a crash loses only what was not yet answered.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get(SQLITE_BEGIN) else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def get_engine() -> Engine:
    """The current app's engine."""
    engine: Engine = current_app.extensions["umstrack.engine"]
    return engine


def get_session() -> Session:
    """The request's session, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = Session(get_engine(), expire_on_commit=False)
    session: Session = g.db_session
    return session


# Where a session keeps its SQLite writer turn (session.info) until its transaction ends,
# and the mark that its transaction committed.
_WRITE_TURN = "umstrack.write_turn"
_COMMITTED = "umstrack.committed"


def write_session() -> Session:
    """The request's session with a transaction that is ready to write. On a SQLite
    file it holds the writer turn until that transaction ends (committed or rolled
    back), not until the request does: the next writer need not wait for this one's
    answer to be made."""
    session = get_session()
    if _WRITE_TURN not in session.info:
        session.info[_WRITE_TURN] = wait_for_write_turn(get_engine())
    session.connection(execution_options={SQLITE_BEGIN: True})
    return session


@event.listens_for(Session, "after_commit")
def _mark_committed(session: Session) -> None:
    if _WRITE_TURN in session.info:
        session.info[_COMMITTED] = True


@event.listens_for(Session, "after_transaction_end")
def _end_write_turn(session: Session, transaction: Any) -> None:
    """Let the next writer in as soon as a session's outermost transaction has ended
    (its commit or rollback done), not at a savepoint's end; then, if it committed,
    wait for its WAL frames to reach the disk."""
    if transaction.parent is None:
        _release_write_turn(session)


def _release_write_turn(session: Session) -> None:
    turn: WriteTurn | None = session.info.pop(_WRITE_TURN, None)
    if turn is not None:
        turn.release(committed=session.info.pop(_COMMITTED, False))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Session]:
    """A session in a transaction ready to write, outside any request: committed when
    the block ends, rolled back if it raises. Holds the SQLite writer turn only as
    long as the block runs, so keep slow work (HTTP calls) out of it."""
    turn = wait_for_write_turn(engine)
    committed = False
    try:
        with Session(engine, expire_on_commit=False) as session:
            session.connection(execution_options={SQLITE_BEGIN: True})
            yield session
            session.commit()
            committed = True
    finally:
        if turn is not None:
            turn.release(committed=committed)


def close_session(_exc: BaseException | None = None) -> None:
    """Close the request's session, rolling back anything uncommitted."""
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
        _release_write_turn(session)  # if no transaction ever began


class WriteTurn:
    """A SQLite file's writer turn, held (an exclusive flock on a file beside the
    database) until :meth:`release`."""

    def __init__(self, database: str) -> None:
        self.database = database
        self._fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def release(self, *, committed: bool) -> None:
        """Let the next writer in; then, after a commit, wait until what it wrote is on
        the disk (:func:`sync_wal`)."""
        os.close(self._fd)
        if committed:
            checkpoint_soon(self.database)
            sync_wal(self.database)


def wait_for_write_turn(engine: Engine) -> WriteTurn | None:
    """For a SQLite file, wait until no other writer of this service holds the
    database and return the turn, held until released; for other databases (and
    in-memory SQLite), None at once.

    SQLite's own busy handler makes waiting writers poll with sleeps of up to
    100 ms, so under load some wait far longer than others. An exclusive flock on
    a file beside the database makes them queue in the kernel instead, threads
    and worker processes alike, and is released if its holder dies.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return None
    return WriteTurn(database)


@functools.cache
def head_revision() -> str:
    """The newest revision of the bundled migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None, "the bundled migrations have no head"
    return head


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision of the bundled migrations."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(revision.revision for revision in script.walk_revisions())


def schema_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def alembic_config(database_url: str) -> Any:
    """An Alembic config for the bundled migrations and the given database."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str) -> None:
    """Upgrade the database schema to the newest revision."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")
