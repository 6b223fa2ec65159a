"""End to end: `umstrack serve` runs migrations and gunicorn, says when it is ready; UMS
posts over real HTTP."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO

import pytest
import requests
from sqlalchemy import create_engine

from receiver.gunicorn_config import GC_THRESHOLDS
from receiver.local import free_port, running_server, stop_server
from sender.ums.protocol import STATUS_BY_TYPE
from tests.conftest import TEST_DATABASE_URL, fresh_postgres_schema
from tests.helpers import CHANNELS_ENV, basic_auth, events, nine_type_batch, record, targets


@pytest.fixture
def unmigrated_url(backend, tmp_path) -> Iterator[str]:
    """An empty database: `serve` must create the schema itself."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/served.db"
        return
    assert TEST_DATABASE_URL
    with fresh_postgres_schema() as url:
        yield url


@pytest.fixture
def served(unmigrated_url, tmp_path) -> Iterator[str]:
    env = {**CHANNELS_ENV, "DATABASE_URL": unmigrated_url, "WEB_CONCURRENCY": "2"}
    with open(tmp_path / "serve.log", "w") as log, running_server(env, output=log) as url:
        yield url


def test_serve_takes_callbacks_over_real_http(served, unmigrated_url):
    with requests.Session() as http:
        echo = http.get(
            f"{served}/callbacks/ums",
            params={"echostr": "e1"},
            headers=basic_auth(),
            timeout=(2, 10),
        )
        assert (echo.status_code, echo.text) == (200, "e1")

        batch = nine_type_batch(100)
        answers = [
            http.post(
                f"{served}/callbacks/ums",
                data=json.dumps(batch),
                headers={**basic_auth(), "Content-Type": "application/json"},
                timeout=(2, 10),
            ).json()
            for _ in range(2)
        ]
        assert answers == [
            {"received": 100, "stored": 100, "duplicates": 0, "quarantined": 0},
            {"received": 100, "stored": 0, "duplicates": 100, "quarantined": 0},
        ]
        unauthorized = http.post(f"{served}/callbacks/ums", data="[]", timeout=(2, 10))
        assert unauthorized.status_code == 401 and unauthorized.json()["error"] == "unauthorized"

    engine = create_engine(unmigrated_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        assert len(events(engine)) == 100
    finally:
        engine.dispose()


def test_two_gunicorn_workers_write_the_same_targets(served, unmigrated_url):
    # 2 workers, 8 posters: batches for the same 50 targets race each other.
    batches = [
        [record(type_, userid=f"u{t}", sent_time=1_700_000_000 + type_) for t in range(50)]
        for type_ in (0, 2, 4, 6, 5, 3, 1, 0)
    ]
    answers: list[int] = []

    def poster(batch: list[dict]) -> None:
        response = requests.post(
            f"{served}/callbacks/ums", json=batch, headers=basic_auth(), timeout=(2, 30)
        )
        answers.append(response.status_code)

    threads = [threading.Thread(target=poster, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * len(batches)

    engine = create_engine(unmigrated_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        current = targets(engine)
    finally:
        engine.dispose()
    assert len(current) == 50
    assert {STATUS_BY_TYPE[t.type] for t in current.values()} == {"clicked"}
    assert {t.event_count for t in current.values()} == {7}  # type 0 came twice: one event


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "http://127.0.0.1:{port}"),
        ("0.0.0.0", "http://127.0.0.1:{port} (listening on every interface)"),
    ],
)
def test_serve_says_once_when_it_answers(unmigrated_url, host, shown):
    port = free_port()
    env = {**os.environ, **CHANNELS_ENV, "DATABASE_URL": unmigrated_url, "WEB_CONCURRENCY": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "receiver.cli", "serve", "--host", host, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stderr, lines))
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any("umstrack: ready on" in line for line in seen):
            seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
        # Said only once it answers: no retry, and the schema is there.
        url = f"http://127.0.0.1:{port}"
        assert requests.get(f"{url}/healthz", timeout=(2, 10)).status_code == 200
        stored = requests.post(
            f"{url}/callbacks/ums", json=nine_type_batch(9), headers=basic_auth(), timeout=(2, 10)
        )
        assert stored.json()["stored"] == 9
    finally:
        stop_server(process, quick=True)
        reader.join()
        process.stderr.close()
    seen += list(lines.queue)
    ready = [line.rstrip("\n") for line in seen if "umstrack: ready on" in line]
    assert len(ready) == 1, seen  # two workers, one line
    assert ready[0].endswith("umstrack: ready on " + shown.format(port=port))


def _read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def test_a_worker_freezes_what_its_loaded_app_holds():
    """Its full garbage collections then leave the app's objects alone (a pause that a
    request caught in it waited out)."""
    code = (
        "import gc, types, receiver.gunicorn_config as c, receiver.app; "
        "before = gc.get_freeze_count(); "
        "c.post_worker_init(types.SimpleNamespace(wsgi=None, sockets=[], log=None)); "
        "print(before, gc.get_freeze_count(), *gc.get_threshold())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    before, frozen, *thresholds = map(int, result.stdout.split())
    assert before == 0 and frozen > 10_000
    # and collects less often than Python's default (700, 10, 10): fewer slow pages
    assert tuple(thresholds) == GC_THRESHOLDS == (20_000, 20, 20)
