"""The database goes away: intake answers 503, stores nothing half, and recovers alone."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy.engine import make_url

from receiver import create_app
from receiver.db import PING_AFTER_IDLE_SECONDS
from tests.helpers import CHANNELS_ENV, events, nine_type_batch, post, targets
from tests.tcpproxy import TcpProxy

# (URL the app uses, take the database away, bring it back)
Switch = Iterator[tuple[str, Callable[[], None], Callable[[], None]]]


@contextmanager
def sqlite_outage_switch(url: str) -> Switch:
    """On SQLite "unavailable" is another process holding the write lock too long."""
    # Any thread may take it away (a fake provider's, say, just as it answers).
    holder = sqlite3.connect(make_url(url).database, isolation_level=None, check_same_thread=False)
    yield url, lambda: holder.execute("BEGIN EXCLUSIVE"), lambda: holder.execute("ROLLBACK")
    holder.close()


@contextmanager
def postgres_outage_switch(url: str) -> Switch:
    """On PostgreSQL the app reaches the server through a proxy that the test cuts."""
    parsed = make_url(url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    proxy.start()
    try:
        yield (
            parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
            proxy.stop,
            proxy.start,
        )
    finally:
        proxy.stop()


@pytest.fixture
def outage(backend, database_url):
    """An app without the outage spool (on PostgreSQL ``SPOOL_DIR=off``; SQLite never
    spools) whose database can be taken away."""
    switch = sqlite_outage_switch if backend == "sqlite" else postgres_outage_switch
    with switch(database_url) as (app_url, go_down, come_back):
        app = create_app(
            {
                "DATABASE_URL": app_url,
                "SQLITE_BUSY_TIMEOUT_MS": "200",
                "SPOOL_DIR": "off",
                **CHANNELS_ENV,
            }
        )
        yield app, go_down, come_back
        app.extensions["umstrack.engine"].dispose()


def test_database_down_without_a_spool_gives_503_then_recovers(outage, engine, backend):
    app, go_down, come_back = outage
    client = app.test_client()
    assert post(client, nine_type_batch(10, msgid="before")).status_code == 200  # pool is warm

    go_down()
    batch = nine_type_batch(100)
    response = post(client, batch)
    assert response.status_code == 503
    assert response.json["error"] == "database_unavailable"
    assert response.headers["Retry-After"]
    if backend == "postgresql":
        # A SQLite write lock still lets readers (and so the readiness check) through.
        assert client.get("/readyz").status_code == 503

    come_back()
    assert {e.msgid for e in events(engine)} == {"before"}  # nothing of the failed batch
    # The provider's retry of the same batch: stored whole, exactly once.
    response = post(client, batch)
    assert response.status_code == 200
    assert response.json == {"received": 100, "stored": 100, "duplicates": 0, "quarantined": 0}
    assert len(events(engine)) == 110 and len(targets(engine)) == 110
    assert client.get("/readyz").status_code == 200


def test_a_connection_cut_while_it_rested_is_replaced_unseen(outage, engine, backend):
    """The pool pings a connection that rested past PING_AFTER_IDLE_SECONDS before it
    hands it out: one the database (or the network) dropped meanwhile is replaced, and
    the request never sees it."""
    if backend != "postgresql":
        pytest.skip("SQLite opens a file, not a connection that can be cut")
    app, go_down, come_back = outage
    client = app.test_client()
    assert post(client, nine_type_batch(10, msgid="first")).status_code == 200  # pooled
    go_down()  # every open connection is cut ...
    come_back()  # ... and new ones are taken again
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    response = post(client, nine_type_batch(10, msgid="after"))
    assert response.status_code == 200, response.json
    assert response.json["stored"] == 10
    assert {e.msgid for e in events(engine)} == {"first", "after"}
