"""Schemathesis against the served OpenAPI document, with all its checks: real gunicorn,
real HTTP on loopback, the local UMS emulator behind POST /api/messages.

Bounded (a fixed seed, a few dozen examples per operation) so that it runs in CI. The
configuration names the three places where the document cannot say everything:

- a cursor is opaque, and only those this service handed out are valid, so a string
  that fits the parameter's schema may still be refused (400), and so is ``limit`` or
  ``cursor`` beside ``format`` (an export is not paged);
- a UMS message has rules no JSON schema can hold (an audience, a channel's fields),
  so a body that fits the schema may still be refused (400, nothing sent);
- a callback batch is taken whole (200) with the records that do not fit quarantined,
  never refused: UMS would otherwise retry the good records with them, then drop all;
- a msgid known only from a callback (schemathesis posts those too) is one UMS never
  sent, so UMS refuses to withdraw it, which the withdraw answers with 502 as documented
  (a server error to schemathesis, but UMS's refusal passed on).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from receiver.local import free_port, running_server

CHANNEL, SECRET, TOKEN = "stchannel0000000000000001", "stsecret00000000000000001", "st-token"
METRICS_TOKEN = "st-metrics-token"
CONFIG = f"""
[auth.openapi.bearerToken]
bearer = "{TOKEN}"

[auth.openapi.metricsToken]
bearer = "{METRICS_TOKEN}"

[auth.openapi.umsChannel]
username = "{CHANNEL}"
password = "{SECRET}"

[[operations]]
include-name-regex = "^GET /api/messages"
checks.positive_data_acceptance.expected-statuses = [200, 400, 404]

[[operations]]
include-name-regex = "^GET /api/recipients"
checks.positive_data_acceptance.expected-statuses = [200, 400]

[[operations]]
include-name = "POST /api/messages"
checks.positive_data_acceptance.expected-statuses = [201, 400, 502, 504]

[[operations]]
include-name = "POST /callbacks/ums"
checks.negative_data_rejection.expected-statuses = [200, 400, 401, 413]

[[operations]]
include-name = "POST /api/messages/{{msgid}}/withdraw"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502"]
"""


@pytest.fixture
def emulator_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "emulate", "--port", str(port)],
        env={**os.environ, "UMS_CHANNELS": f"{CHANNEL}:{SECRET}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_served_document_holds_under_schemathesis(
    database_url: str, emulator_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = {
        "DATABASE_URL": database_url,
        "UMS_CHANNELS": f"{CHANNEL}:{SECRET}",
        "API_TOKENS": TOKEN,
        "METRICS_TOKEN": METRICS_TOKEN,
        "UMS_API_BASE": emulator_url,
        "WEB_CONCURRENCY": "2",
        "GUNICORN_ACCESSLOG": "",
    }
    with running_server(env) as url:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(config),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "20261126",
                "--generation-allow-x00",
                "true",
                "--generation-database",
                "none",
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout
