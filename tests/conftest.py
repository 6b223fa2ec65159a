"""Fixtures: every database test runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from receiver import create_app
from receiver.config import normalize_database_url
from receiver.db import migrate
from tests.cli import restored_logging
from tests.helpers import API_TOKEN, CHANNELS_ENV

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]


def pytest_configure(config: pytest.Config) -> None:
    # In CI the PostgreSQL half of the suite is not optional: fail, never skip.
    if os.environ.get("CI") and not TEST_DATABASE_URL:
        pytest.exit("CI is set but TEST_DATABASE_URL is not: PostgreSQL tests would not run", 3)
    if TEST_DATABASE_URL:
        try:
            engine = create_engine(normalize_database_url(TEST_DATABASE_URL))
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
        except Exception as exc:  # any failure: the suite cannot run as asked
            pytest.exit(f"TEST_DATABASE_URL is unreachable: {exc}", 3)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: os.PathLike[str]) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, or a new PostgreSQL schema."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/umstrack.db"
        migrate(url)
        yield url
        return
    with fresh_postgres_schema() as url:
        migrate(url)
        yield url


class fresh_postgres_schema:  # noqa: N801 (used like a function)
    """Context manager: a URL whose connections see only a new, empty schema."""

    def __init__(self) -> None:
        self.schema = f"test_{uuid.uuid4().hex[:12]}"
        self.admin = create_engine(normalize_database_url(TEST_DATABASE_URL))

    def __enter__(self) -> str:
        with self.admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        url = make_url(normalize_database_url(TEST_DATABASE_URL)).update_query_dict(
            {"options": f"-csearch_path={self.schema}"}
        )
        return url.render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        with self.admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        self.admin.dispose()


@pytest.fixture
def env(database_url: str, tmp_path: os.PathLike[str]) -> dict[str, str]:
    """The environment the app under test is given (its outage spool in ``tmp_path``)."""
    return {
        "DATABASE_URL": database_url,
        **CHANNELS_ENV,
        "API_TOKENS": f"other-token,{API_TOKEN}",
        "SPOOL_DIR": f"{tmp_path}/spool",
    }


@pytest.fixture
def app(env: dict[str, str]) -> Iterator[Flask]:
    app = create_app(env)
    yield app
    app.extensions["umstrack.engine"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def engine(app: Flask) -> Engine:
    engine: Engine = app.extensions["umstrack.engine"]
    return engine


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    """A CliRunner for ``umstrack`` commands; their logging set-up is undone afterwards."""
    with restored_logging():
        yield CliRunner()


@pytest.fixture
def engine_for_sqlite(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite file (for SQLite-only behaviour) and an engine on it."""
    url = f"sqlite:///{tmp_path}/umstrack.db"
    migrate(url)
    engine = create_engine(url)
    yield url, engine
    engine.dispose()
