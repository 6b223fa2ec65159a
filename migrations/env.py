"""Alembic environment: the URL comes from receiver.config, the tables from the models."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from receiver.config import Settings
from receiver.db import make_engine
from receiver.models import belongs_on  # also registers the tables on SQLModel.metadata
from receiver.partitions import ensure_partitions, is_partition

config = context.config
target_metadata = SQLModel.metadata


def _database_url() -> str:
    # Set by receiver.db.migrate(); the `alembic` command line reads the environment.
    url = config.attributes.get("database_url")
    return url or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(Settings(database_url=_database_url()), maintenance=True)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                include_object=lambda obj, _name, _type, reflected, _other: (
                    reflected or belongs_on(obj, connection.dialect.name)
                ),
                # The daily partitions are made and dropped at run time, not by models.
                include_name=lambda name, type_, _parents: (
                    type_ != "table" or not is_partition(str(name))
                ),
            )
            with context.begin_transaction():
                context.run_migrations()
        # On PostgreSQL, the partitions of the days ahead (whoever migrates: the release
        # step, `umstrack migrate`, `umstrack serve`).
        ensure_partitions(engine)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
