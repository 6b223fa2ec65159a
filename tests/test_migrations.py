"""Alembic: an empty database upgrades to head, and the models match the migrations."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

from receiver.config import normalize_database_url
from receiver.db import alembic_config, migrate
from receiver.models import belongs_on  # also puts the tables on the metadata
from receiver.partitions import is_partition
from tests.conftest import TEST_DATABASE_URL

TABLES = {
    "alembic_version",
    "message",
    "event",
    "target",
    "quarantine",
    "idempotency_key",
    "message_activity",
    "kept_summary",
}


@pytest.fixture
def empty_database(backend, tmp_path) -> Iterator[str]:
    """A brand-new database: a new SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/empty.db"
        return
    admin_url = normalize_database_url(TEST_DATABASE_URL)
    name = f"umstrack_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_empty_database_upgrades_to_head(empty_database):
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        tables = {name for name in inspect(engine).get_table_names() if not is_partition(name)}
        assert tables == TABLES
        head = ScriptDirectory.from_config(alembic_config(empty_database)).get_current_head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    finally:
        engine.dispose()


def test_models_match_migrations(empty_database):
    migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "include_object": lambda obj, _name, _type, reflected, _other: (
                        reflected or belongs_on(obj, conn.dialect.name)
                    ),
                    "include_name": lambda name, type_, _parents: (
                        type_ != "table" or not is_partition(name)
                    ),
                },
            )
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_back(empty_database):
    migrate(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    engine = create_engine(empty_database)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    migrate(empty_database)


def test_upgrade_to_0006_gives_rows_their_message_day_and_back(empty_database, backend):
    config = alembic_config(empty_database)
    command.upgrade(config, "0005")
    at = "2026-01-02 03:04:05" + ("+00" if backend == "postgresql" else ".000000")
    day = 20455  # 2026-01-02, in days since 1970-01-01
    engine = create_engine(empty_database)
    try:
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO message (msgid, provider, created_at) VALUES ('m1', 'ums', :at)"),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO event (msgid, event_key, type, channelkey, occurred_at, raw,"
                    " received_at) VALUES ('m1', 'k1', 4, 'ch', :at, '{}', :at)"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "INSERT INTO target (msgid, recipient, sender, type, rank, reached_at,"
                    " event_count, updated_at) VALUES ('m1', 'u1', 1, 4, 5, :at, 1, :at)"
                ),
                {"at": at},
            )
        command.upgrade(config, "0006")
        with engine.connect() as conn:
            for table in ("message", "event", "target"):
                assert conn.execute(text(f"SELECT day FROM {table}")).scalars().all() == [day]
            if backend == "postgresql":
                partitioned = conn.execute(
                    text(
                        "SELECT relname FROM pg_partitioned_table JOIN pg_class ON oid = partrelid"
                    )
                )
                assert set(partitioned.scalars()) == {"event", "target"}
        indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("event")}
        assert indexes["ix_event_timeline"][:2] == ["msgid", "day"]
        assert {"ix_event_userid", "ix_event_sender_id"} <= set(indexes)
        assert inspect(engine).get_pk_constraint("target")["constrained_columns"] == [
            "msgid",
            "recipient",
            "sender",
            "day",
        ]

        command.downgrade(config, "0005")
        with engine.connect() as conn:
            for table in ("message", "event", "target"):
                assert conn.execute(text(f"SELECT msgid FROM {table}")).scalars().all() == ["m1"]
        for table in ("message", "event", "target"):
            assert "day" not in {c["name"] for c in inspect(engine).get_columns(table)}
        assert inspect(engine).get_pk_constraint("event")["constrained_columns"] == [
            "msgid",
            "event_key",
        ]
    finally:
        engine.dispose()
