"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from receiver import create_app
from receiver.config import ConfigError, Settings, normalize_database_url, parse_channels


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db.example:5432/d", "postgresql+psycopg://u:p@db.example:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url_forms(given, expected):
    assert normalize_database_url(given) == expected


def test_default_database_is_a_sqlite_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).database_url == f"sqlite:///{Path(tmp_path) / 'umstrack.db'}"


def test_channels_parse():
    assert parse_channels(" ck1:s1 , ck2:s:2,") == {"ck1": "s1", "ck2": "s:2"}
    with pytest.raises(ConfigError, match="channelkey:mastersecret"):
        parse_channels("ck1")


def test_settings_defaults_and_errors():
    settings = Settings.from_env({"DATABASE_URL": "sqlite://"})
    assert settings.max_body_bytes == 1 << 20 and settings.port == 8000
    assert settings.channels == {} and settings.api_tokens == ()
    with pytest.raises(ConfigError, match="MAX_BODY_BYTES"):
        Settings.from_env({"MAX_BODY_BYTES": "lots"})


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/wal.db", "SQLITE_BUSY_TIMEOUT_MS": "1234"}
    )
    engine = app.extensions["umstrack.engine"]
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
    engine.dispose()
