"""`umstrack status MSGID`: summary and timeline in the terminal, no server running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import MSGID, SENT_TIME, post, record


def _status(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "receiver.cli", "status", *args],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def filled(client, database_url) -> str:
    post(
        client,
        [
            record(4, userid="user1", sent_time=SENT_TIME + 30),
            record(2, userid="user1", sent_time=SENT_TIME + 20),
            record(0, userid="user1", sender=0, sent_time=SENT_TIME + 10),
            record(5, userid="", sender=5, sender_id="13800000000", sent_time=SENT_TIME + 40),
        ],
    )
    return database_url


def test_status_prints_summary_and_timeline(filled):
    result = _status(filled, MSGID)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"message:     {MSGID}" in lines
    assert 'params:      {"order_id": "123"}' in lines
    assert "first event: 2023-11-14 22:13:30" in lines
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.split()}
    assert rows["target_valid"] == ["1", "0"]  # validated, then moved on
    assert rows["delivered"] == ["1", "1"]
    assert rows["delivery_failed"] == ["1", "1"]
    assert rows["total"] == ["4", "2"]

    timeline = lines[lines.index("Timeline (4 of 4)") + 3 :]
    assert [line.split()[2] for line in timeline] == [
        "target_valid",
        "submitted",
        "delivered",
        "delivery_failed",
    ]
    assert timeline[2].startswith("2023-11-14 22:13:50  delivered")
    assert "app (android/huawei)" in timeline[2] and "user1 [sid-user1-1]" in timeline[2]
    assert timeline[3].endswith("error 3005: failure of type 5")
    assert "sms" in timeline[3] and "13800000000" in timeline[3]


def test_status_limit_says_what_it_left_out(filled):
    result = _status(filled, MSGID, "--limit", "3")
    assert result.returncode == 0, result.stderr
    assert "Timeline (3 of 4)" in result.stdout
    assert result.stdout.rstrip().endswith("... 1 more; --limit 0 shows all")


def test_status_of_unknown_message_fails(filled):
    result = _status(filled, "v:1t:1p:1n:1")
    assert result.returncode == 1
    assert "no message 'v:1t:1p:1n:1' is known" in result.stderr and result.stdout == ""


def test_status_without_a_database_fails_clearly(tmp_path):
    result = _status(f"sqlite:///{tmp_path}/nothing-here.db", MSGID)
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "nothing-here.db").exists()
