"""Safe defaults of the command line: one line, never a traceback or a secret, for a
database that is missing or a setting that is wrong; callback text escaped on a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from receiver.config import ConfigError, Settings, parse_channels
from receiver.local import free_port
from receiver.text import printable
from tests.conftest import TEST_DATABASE_URL
from tests.helpers import MSGID, post, record

PASSWORD = "hunter2-not-shown"
MASTER_SECRET = "mastersecret-not-shown"


def _umstrack(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PORT", "HOST")}
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _postgres(database: str, *, port: int | None = None) -> str:
    url = make_url(TEST_DATABASE_URL or "postgresql://postgres@127.0.0.1:5432/x")
    url = url.set(password=PASSWORD, database=database, port=port or url.port)
    return url.render_as_string(hide_password=False)


# (DATABASE_URL or another setting, exit code, what the line says)
CASES = {
    "missing database": (
        {"DATABASE_URL": _postgres("umstrack_does_not_exist")},
        1,
        'database "umstrack_does_not_exist" does not exist',
    ),
    "refused": ({"DATABASE_URL": _postgres("x", port=free_port())}, 1, "Connection refused"),
    "no such directory": (
        {"DATABASE_URL": "sqlite:////nonexistent-dir/umstrack.db"},
        1,
        "unable to open database file",
    ),
    "unknown scheme": (
        {"DATABASE_URL": f"oracle2://u:{PASSWORD}@h/db"},
        2,
        "DATABASE_URL oracle2://u:***@h/db cannot be used",
    ),
    "not a URL": ({"DATABASE_URL": "not a url"}, 2, "DATABASE_URL (not a URL) cannot be used"),
    "bad port": ({"PORT": "abc"}, 2, "configuration error: PORT: 'abc' is not an integer"),
    "bad channels": (
        {"UMS_CHANNELS": f"key:secret,{MASTER_SECRET}"},
        2,
        "UMS_CHANNELS: item 2 of 2 has no ':'",
    ),
}
COMMANDS = {
    "serve": ("serve", "--port", "1"),  # never reached: the check comes first
    "migrate": ("migrate",),
    "bench": ("bench", "--batches", "1"),
    "status": ("status", MSGID),
    "purge": ("purge", "--days", "30"),
    "quarantine list": ("quarantine", "list"),
    "quarantine replay": ("quarantine", "replay", "--all"),
    "export": ("export", MSGID),
    "withdraw": ("withdraw", MSGID),
    "spool drain": ("spool", "drain"),
}
# What a command says instead, where it checks first in a way of its own.
# The commands that only read (or change) an existing database say that it is missing;
# for withdraw no message is then known (exit 2).
SAYS_INSTEAD = {
    (command, "no such directory"): "no database at /nonexistent-dir/umstrack.db"
    for command in ("status", "purge", "quarantine list", "quarantine replay", "export", "withdraw")
}
SAYS_INSTEAD["spool drain", "no such directory"] = (
    "no outage spool to drain: the database is SQLite"
)
CODE_INSTEAD = {("withdraw", "no such directory"): 2, ("spool drain", "no such directory"): 2}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_says_in_one_line_what_is_wrong(command, case, tmp_path):
    env, code, says = CASES[case]
    says = SAYS_INSTEAD.get((command, case), says)
    code = CODE_INSTEAD.get((command, case), code)
    if "postgresql" in env.get("DATABASE_URL", "") and not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL's server")
    args = COMMANDS[command]
    if command == "bench" and "DATABASE_URL" in env:
        args = (*args, "--database-url", env["DATABASE_URL"])
        env = {}
    result = _umstrack(*args, env={"DATABASE_URL": f"sqlite:///{tmp_path}/ok.db", **env})
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("umstrack: "), result.stderr
    assert says in lines[0]
    assert PASSWORD not in result.stderr and MASTER_SECRET not in result.stderr
    assert result.stdout == ""


def test_migrate_logs_no_password():
    # Trust authentication lets the password through: it connects, migrates and logs.
    if not TEST_DATABASE_URL:
        pytest.skip("needs TEST_DATABASE_URL")
    result = _umstrack(
        "migrate", env={"DATABASE_URL": _postgres(make_url(TEST_DATABASE_URL).database or "")}
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_a_malformed_channel_item_is_named_by_position_not_text():
    for value, says in (
        (f"k1:s1, {MASTER_SECRET}", "item 2 of 2 has no ':'"),
        (f":{MASTER_SECRET}", "item 1 of 1 has no channelkey"),
        ("k1:", "item 1 of 1 has no mastersecret"),
    ):
        with pytest.raises(ConfigError, match=says) as caught:
            parse_channels(value)
        assert MASTER_SECRET not in str(caught.value)


def test_settings_repr_shows_no_secret():
    settings = Settings.from_env(
        {
            "DATABASE_URL": f"postgres://app:{PASSWORD}@db.example.com/umstrack",
            "UMS_CHANNELS": f"key:{MASTER_SECRET}",
            "API_TOKENS": "token-not-shown",
            "SECRET_KEY": "cookie-key-not-shown",
            "METRICS_TOKEN": "metrics-not-shown",
            "RONGCLOUD_APP_SECRET": "rong-not-shown",
        }
    )
    shown = repr(settings)
    assert "postgresql+psycopg://app:***@db.example.com/umstrack" in shown
    assert "statement_timeout_ms=30000" in shown
    for secret in (PASSWORD, MASTER_SECRET, "token-not-shown", "cookie-key-not-shown"):
        assert secret not in shown
    assert "metrics-not-shown" not in shown and "rong-not-shown" not in shown


# --- control characters on a terminal -----------------------------------------------

HOSTILE_USER = "mallory\x1b]0;owned\x07\u202etxt.exe"
HOSTILE_ERROR = "bad\x1b[2J\x1b[1;1Hdelivered\nforged row\x9b31m"


def test_printable_escapes_controls_and_bidi_overrides():
    assert printable("a\x1b[31mb\x07\r\t\x7f\x9b") == "a\\x1b[31mb\\x07\\r\\t\\x7f\\x9b"
    assert printable("x\u202ey\u2066z\u200f") == "x\\u202ey\\u2066z\\u200f"
    assert printable("one\ntwo") == "one\\ntwo"
    assert printable("one\ntwo", newlines=True) == "one\ntwo"
    assert printable("中文 ünïcode ok") == "中文 ünïcode ok"


def test_status_escapes_what_callbacks_said(client, database_url):
    response = post(
        client,
        [
            record(5, userid=HOSTILE_USER, error={"code": 3005, "message": HOSTILE_ERROR}),
            record(4, userid="user2", params={"note": "\x1b[8mhidden"}),
        ],
    )
    assert response.status_code == 200 and response.json["stored"] == 2
    result = _umstrack("status", MSGID, env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert raw not in out
    assert "mallory\\x1b]0;owned\\x07\\u202etxt.exe" in out
    assert "bad\\x1b[2J\\x1b[1;1Hdelivered\\nforged row\\x9b31m" in out
    assert not any(line.startswith("forged row") for line in out.splitlines())
