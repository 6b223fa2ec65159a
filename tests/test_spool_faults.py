"""The outage spool under real faults, end to end: an outage longer than UMS's retries
while the emulator posts, a gunicorn worker killed while it spools, the whole service
killed while it drains. Real gunicorn, real PostgreSQL reached through a proxy the test
cuts; PostgreSQL only, as SQLite never spools (its database is the local disk)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from receiver.config import DEFAULT_SPOOL_MAX_BYTES, Settings
from receiver.db import make_engine
from receiver.local import running_server, running_server_process
from receiver.spool import Spool
from sender.emulator import Emulator
from sender.ums.client import UmsClient
from tests.conftest import TEST_DATABASE_URL
from tests.emulator_helpers import APP, HTTP_TIMEOUT, SMS, config
from tests.helpers import CHANNEL, SECRET, basic_auth, events, nine_type_batch, quarantined
from tests.test_database_down import postgres_outage_switch
from tests.test_emulator_loop import check_receiver_has_exactly, receiver_env

pytestmark = pytest.mark.skipif(
    not TEST_DATABASE_URL, reason="the outage spool is PostgreSQL's only (SQLite never spools)"
)

# (the URL the server is given, take the database away, bring it back)
Outage = tuple[str, Callable[[], None], Callable[[], None]]
Batch = list[dict[str, Any]]


@pytest.fixture
def backend() -> str:
    return "postgresql"


@pytest.fixture
def outage(database_url: str) -> Iterator[Outage]:
    with postgres_outage_switch(database_url) as switch:
        yield switch


@pytest.fixture
def direct(database_url: str) -> Iterator[Engine]:
    """An engine on the test's schema that bypasses the proxy: the test reads through it."""
    engine = make_engine(Settings(database_url=database_url))
    yield engine
    engine.dispose()


def served_env(app_url: str, tmp_path: Path) -> dict[str, str]:
    """The server's environment: its database through the proxy, its spool and metrics
    in ``tmp_path`` (a server killed with SIGKILL removes neither)."""
    return {
        **receiver_env(app_url),
        "SPOOL_DIR": str(tmp_path / "spool"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }


def spool_entries(tmp_path: Path) -> int:
    """How many batches wait in the server's spool (read by file names only: a test
    that polls it never takes the drainers' turn)."""
    ready = tmp_path / "spool" / "ready"
    return sum(name.endswith(".batch") for name in os.listdir(ready)) if ready.exists() else 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


def wait_for_drain(tmp_path: Path, timeout: float) -> None:
    """Until the spool is empty (an entry goes once its transaction committed), none
    of it set aside."""
    spool = Spool(tmp_path / "spool", DEFAULT_SPOOL_MAX_BYTES)
    wait_until(lambda: spool_entries(tmp_path) == 0, timeout, "the spool drained")
    status = spool.status()
    assert (status.entries, status.held) == (0, 0), status


def check_stored_exactly_once(engine: Engine, batches: list[Batch]) -> None:
    """The events are the batches' records, each once: none missing, none doubled."""
    expected = Counter(
        (r["msgid"], r["userid"], r["sender"], r["type"]) for batch in batches for r in batch
    )
    assert max(expected.values()) == 1  # the batches' records are distinct
    stored = Counter((e.msgid, e.userid, e.sender, e.type) for e in events(engine))
    assert stored == expected
    assert quarantined(engine) == []


def post_until_acknowledged(http: requests.Session, url: str, batch: Batch) -> int:
    """POST a batch as UMS does, again after a failed attempt (no answer, or not 200)
    until it gets a 200; how many attempts failed."""
    failed = 0
    while True:
        try:
            response = http.post(url, json=batch, headers=basic_auth(), timeout=HTTP_TIMEOUT)
        except requests.RequestException:
            pass  # no answer, or one cut off mid-body: the worker died meanwhile
        else:
            if response.status_code == 200:
                assert response.json() == {"received": len(batch), "spooled": len(batch)}
                return failed
        failed += 1
        assert failed < 20, "a batch was refused again and again"
        time.sleep(0.05)


def workers(arbiter: int) -> list[int]:
    """The pids of gunicorn's workers: the arbiter's children (read from /proc)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # pid (comm) state ppid ...: comm may hold spaces, so split after its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == arbiter:
                found.append(int(name))
    return found


def connections(pid: int, port: int | None) -> int:
    """How many TCP connections to 127.0.0.1:``port`` a process holds (read from /proc)."""
    sockets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            sockets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    held = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        # sl local_address rem_address st ... inode: addresses in hex, 01 established.
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        held += local_port == port and state == "01" and f"socket:[{inode}]" in sockets
    return held


def spooled_records(base: str) -> float:
    """The records the server counted as spooled (/metrics needs no token on loopback)."""
    response = requests.get(f"{base}/metrics", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return sum(
        sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == "umstrack_callback_records_total"
        and sample.labels.get("outcome") == "spooled"
    )


# --------------------------------------------------------------------------- with the emulator

USERS = 400  # per message: with the app and SMS, about 2,000 records each
OUTAGE_SECONDS = 3.5


def test_an_outage_longer_than_ums_retries_loses_nothing(outage: Outage, tmp_path: Path) -> None:
    """Without the spool, UMS drops a batch whose retries all fail; with it, every
    batch of an outage several retry windows long is answered 200 and stored once."""
    app_url, go_down, come_back = outage
    settings = config(retry_interval=0.3, max_retries=3, delay_share=0.2, delay_seconds=1.0)
    retry_window = settings.retry_interval * settings.max_retries  # first attempt to last
    assert retry_window < OUTAGE_SECONDS / 3

    def message(n: int) -> dict[str, Any]:
        return {"aud_userid": [f"u{n}_{i}" for i in range(USERS)], "msg_app": APP, "msg_sms": SMS}

    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server(served_env(app_url, tmp_path), output=log) as base,
        Emulator(settings) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=f"{base}/callbacks/ums") as ums,
    ):
        before = ums.send(message(0)).msgid
        wait_until(lambda: em.state()["batches"]["acknowledged"] > 0, 10, "a batch stored")
        go_down()
        cut = time.monotonic()
        during = [ums.send(message(1)).msgid]
        time.sleep(OUTAGE_SECONDS / 2)  # callbacks flow across the whole outage
        during.append(ums.send(message(2)).msgid)
        time.sleep(max(cut + OUTAGE_SECONDS - time.monotonic(), 0))
        assert spool_entries(tmp_path) > 0  # still waiting after several retry windows
        come_back()

        assert em.wait_idle(20), em.pending()
        wait_for_drain(tmp_path, 20)
        check_receiver_has_exactly(em, base, [before, *during])
        spooled = spooled_records(base)

    state = em.state()
    [endpoint] = state["callbacks"]
    assert set(endpoint["answers"]) == {"200"}, endpoint["answers"]  # no 503, no error
    assert endpoint["batches"]["failed"] == endpoint["batches"]["dropped"] == 0
    # What the answers did not say stored, duplicate or quarantined was spooled.
    receiver = endpoint["receiver"]
    answered = receiver["stored"] + receiver.get("duplicates", 0) + receiver.get("quarantined", 0)
    assert spooled == receiver["received"] - answered > 0
    assert state["records"]["generated"] > 5_000


# --------------------------------------------------------------------------- processes killed

CLIENTS = 6
BATCHES_PER_CLIENT = 20


def test_a_worker_killed_while_spooling_loses_and_doubles_nothing(
    outage: Outage, direct: Engine, tmp_path: Path
) -> None:
    """A worker killed mid-request may have spooled a batch its client never heard of:
    the client posts it again, and the drain stores its records once all the same."""
    app_url, go_down, come_back = outage
    batches = [
        nine_type_batch(20, msgid=f"killed-{i}") for i in range(CLIENTS * BATCHES_PER_CLIENT)
    ]
    acknowledged = 0
    failed = 0
    lock = threading.Lock()

    def client(mine: list[Batch], url: str) -> None:
        nonlocal acknowledged, failed
        with requests.Session() as http:
            for batch in mine:
                failures = post_until_acknowledged(http, url, batch)
                with lock:
                    acknowledged += 1
                    failed += failures

    with (
        open(tmp_path / "serve.log", "w") as log,
        running_server_process(served_env(app_url, tmp_path), output=log) as (base, server),
    ):
        wait_until(lambda: len(workers(server.pid)) == 2, 10, "two workers up")
        go_down()
        threads = [
            threading.Thread(target=client, args=(batches[n::CLIENTS], f"{base}/callbacks/ums"))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        wait_until(lambda: acknowledged >= len(batches) // 3, 20, "a third spooled")
        # The clients keep their connections alive: the worker holding them is killed.
        port = urlsplit(base).port
        victim = max(workers(server.pid), key=lambda pid: connections(pid, port))
        assert connections(victim, port) > 0
        os.kill(victim, signal.SIGKILL)
        for thread in threads:
            thread.join()
        assert victim not in workers(server.pid) and server.poll() is None
        assert failed > 0  # the kill cut requests in flight, which were posted again

        come_back()
        wait_for_drain(tmp_path, 20)
        check_stored_exactly_once(direct, batches)


SPOOLED_BATCHES = 150


def test_the_service_killed_while_draining_resumes_and_stores_once(
    outage: Outage, direct: Engine, tmp_path: Path
) -> None:
    """SIGKILL to every process mid-drain: the entry being taken may be in the database
    and in the spool both, and the next server's drain takes the rest without doubling it."""
    app_url, go_down, come_back = outage
    env = served_env(app_url, tmp_path)
    batches = [nine_type_batch(20, msgid=f"drained-{i}") for i in range(SPOOLED_BATCHES)]
    with open(tmp_path / "serve.log", "w") as log:
        with running_server_process(env, output=log) as (base, server):
            go_down()
            with requests.Session() as http:
                for batch in batches:
                    assert post_until_acknowledged(http, f"{base}/callbacks/ums", batch) == 0
            assert spool_entries(tmp_path) == SPOOLED_BATCHES
            come_back()
            wait_until(
                lambda: spool_entries(tmp_path) < SPOOLED_BATCHES * 0.95, 20, "the drain started"
            )
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        left = spool_entries(tmp_path)
        assert 0 < left < SPOOLED_BATCHES  # killed part-way through the drain

        with running_server(env, output=log):
            wait_for_drain(tmp_path, 20)
        check_stored_exactly_once(direct, batches)
