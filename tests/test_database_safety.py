"""The database side of safe defaults: PostgreSQL's statement timeout (503, never a 500;
migrations not limited) and errors that never show the values of a statement or row."""

from __future__ import annotations

import logging

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from receiver import create_app
from receiver.config import Settings
from receiver.db import get_session, make_engine
from receiver.drain import drain
from tests.helpers import events, nine_type_batch, post

PHONE = "13912345678"


@pytest.fixture
def postgresql_url(backend, database_url) -> str:
    if backend != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's (SQLite waits busy_timeout instead)")
    return database_url


@pytest.mark.parametrize("spool", [False, True], ids=["no spool", "spool"])
def test_a_statement_over_the_timeout_is_a_503_and_stores_nothing(
    postgresql_url, env, engine, spool
):
    """A batch stuck behind a lock past STATEMENT_TIMEOUT_MS: a 503 without the outage
    spool; with it, the batch is spooled (200) and stored once the lock is gone."""
    app = create_app(
        {**env, "STATEMENT_TIMEOUT_MS": "300", **({} if spool else {"SPOOL_DIR": "off"})}
    )
    client = app.test_client()
    # Another session holds the event table: the batch's insert waits behind it.
    holder = psycopg.connect(postgresql_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        holder.execute("LOCK TABLE event IN ACCESS EXCLUSIVE MODE")
        batch = nine_type_batch(10)
        response = post(client, batch)
        if spool:
            assert response.status_code == 200
            assert response.json == {"received": 10, "spooled": 10}
        else:
            assert response.status_code == 503
            assert response.json["error"] == "database_unavailable"
            assert "STATEMENT_TIMEOUT_MS" in response.json["message"]
            assert response.headers["Retry-After"]
    finally:
        holder.rollback()
        holder.close()
    assert events(engine) == []
    if spool:
        drain(engine, app.extensions["umstrack.spool"])
        assert len(events(engine)) == 10
    else:
        assert post(client, batch).status_code == 200  # the provider's retry
    app.extensions["umstrack.engine"].dispose()


def test_a_database_cut_off_by_the_network_fails_in_seconds(postgresql_url):
    """Connections give up on a silent network: 5 s to connect, and 10 s of
    unacknowledged packets on an open one (libpq's tcp_user_timeout), not the kernel's
    quarter of an hour; then intake spools."""
    engine = make_engine(Settings(database_url=postgresql_url))
    try:
        with engine.connect() as conn:
            parameters = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        assert (parameters["connect_timeout"], parameters["tcp_user_timeout"]) == ("5", "10000")
    finally:
        engine.dispose()


def test_the_timeout_applies_to_the_app_and_not_to_migrations(postgresql_url):
    settings = Settings(database_url=postgresql_url, statement_timeout_ms=200)
    limited, maintenance = make_engine(settings), make_engine(settings, maintenance=True)
    try:
        with limited.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
            with pytest.raises(OperationalError) as caught:
                conn.execute(text("SELECT pg_sleep(1)"))
            assert caught.value.orig.sqlstate == "57014"  # type: ignore[union-attr]
        with maintenance.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "0"
            conn.execute(text("SELECT pg_sleep(0.4)"))  # twice the app's limit
    finally:
        limited.dispose()
        maintenance.dispose()


def test_engine_errors_never_show_the_statement_parameters(engine):
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("INSERT INTO nowhere (phone) VALUES (:phone)"), {"phone": PHONE})
    assert "nowhere" in str(caught.value)
    assert PHONE not in str(caught.value)
    # Without hide_parameters the same error shows the phone number.
    plain = create_engine(engine.url)
    with pytest.raises(DBAPIError) as shown, plain.connect() as conn:
        conn.execute(text("INSERT INTO nowhere (phone) VALUES (:phone)"), {"phone": PHONE})
    plain.dispose()
    assert PHONE in str(shown.value)


def test_a_database_error_is_logged_without_the_values(app: Flask, engine, caplog):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (phone VARCHAR(20) PRIMARY KEY)"))

    @app.post("/_probe")
    def _probe() -> str:
        session = get_session()
        for _ in range(2):  # the second is a duplicate key: PostgreSQL's DETAIL quotes it
            session.execute(text("INSERT INTO probe (phone) VALUES (:p)"), {"p": PHONE})
        return "unreachable"

    with caplog.at_level(logging.ERROR):
        response = app.test_client().post("/_probe")
    assert response.status_code == 500
    assert set(response.json) == {"error", "message"}
    logged = caplog.text
    assert "IntegrityError" in logged and "Traceback" in logged
    assert ("23505" in logged) if engine.dialect.name == "postgresql" else ("UNIQUE" in logged)
    assert PHONE not in logged
