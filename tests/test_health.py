"""/healthz says the process answers; /readyz says whether the database answers and its
schema is at the migrations' head, naming what fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from receiver import create_app
from receiver.db import alembic_config, head_revision, known_revisions
from receiver.local import free_port
from tests.conftest import TEST_DATABASE_URL, fresh_postgres_schema
from tests.helpers import CHANNELS_ENV


@pytest.fixture
def unreachable_url(backend, tmp_path) -> str:
    """A database nobody can reach: a SQLite file in a directory that does not exist,
    a PostgreSQL port nothing listens on."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/no-such-directory/umstrack.db"
    return f"postgresql://postgres@127.0.0.1:{free_port()}/umstrack"


@pytest.fixture
def empty_url(backend, tmp_path) -> Iterator[str]:
    """A database that answers but was never migrated."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    assert TEST_DATABASE_URL
    with fresh_postgres_schema() as url:
        yield url


def _client(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    app = create_app(
        {"DATABASE_URL": database_url, "SPOOL_DIR": f"{tmp_path}/spool", **CHANNELS_ENV}
    )
    return app, app.test_client()


def _spool(backend: str) -> str:
    """What readiness says of an empty spool (SQLite never spools)."""
    return "off" if backend == "sqlite" else "empty"


def test_ready_when_the_schema_is_at_head(client, backend):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        # SQLite never spools: its database is the local disk already.
        "checks": {
            "database": "ok",
            "schema": head_revision(),
            "spool": _spool(backend),
        },
    }


def test_healthz_answers_without_the_database(unreachable_url, backend, tmp_path):
    app, client = _client(unreachable_url, tmp_path)
    try:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz").json == {"status": "ok"}
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["error"] == "not_ready"
        assert response.json["checks"] == {"database": "unavailable", "spool": _spool(backend)}
        assert "the database does not answer" in response.json["message"]
    finally:
        app.extensions["umstrack.engine"].dispose()


def test_not_ready_when_the_schema_is_behind_head(database_url, app, client, backend):
    app.extensions["umstrack.engine"].dispose()  # no pooled connection holds a lock
    command.downgrade(alembic_config(database_url), "-1")
    with app.extensions["umstrack.engine"].connect() as conn:
        previous = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert previous != head_revision()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {
        "database": "ok",
        "schema": f"behind: {previous}",
        "spool": _spool(backend),
    }
    behind = f"the schema is at {previous}, behind head {head_revision()}"
    assert behind in response.json["message"]
    assert client.get("/healthz").status_code == 200

    command.upgrade(alembic_config(database_url), "head")
    assert client.get("/readyz").status_code == 200


def test_not_ready_before_the_first_migration(empty_url, backend, tmp_path):
    app, client = _client(empty_url, tmp_path)
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json["checks"] == {
            "database": "ok",
            "schema": "none",
            "spool": _spool(backend),
        }
        assert "the database has no schema" in response.json["message"]
    finally:
        app.extensions["umstrack.engine"].dispose()


def test_ready_at_a_newer_release_revision(app, client, engine, backend):
    # A newer release migrated first (a rolling deploy): this one keeps serving.
    assert "f00dfeed0001" not in known_revisions()
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed0001'"))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {
        "database": "ok",
        "schema": "f00dfeed0001",
        "spool": _spool(backend),
    }


def test_health_checks_are_documented_without_auth(client):
    paths = client.get("/openapi.json").json["paths"]
    for path in ("/healthz", "/readyz"):
        operation = paths[path]["get"]
        assert operation["security"] == []
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
