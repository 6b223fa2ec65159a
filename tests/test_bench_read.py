"""``umstrack bench read`` fills a database through the intake with the data set it
describes, grows it without doubling anything, and prints each read's figures at each
size. Figures are the benchmark's business; these tests check what it measures."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import Engine, func, select

from receiver.bench_read import (
    BROADCAST,
    EVENTS_PER_SMALL,
    SMALL_RECIPIENTS,
    broadcast_records,
    grow,
    small_message,
    stored,
)
from receiver.store import EVENT, MESSAGE, TARGET


def _count(engine: Engine, table, *where) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def test_the_data_set_has_failures_to_rank_and_recipients_still_waiting() -> None:
    records = list(broadcast_records(400, 1_700_000_000))
    types = {r["type"] for r in records}
    assert types == {0, 1, 2, 4, 5, 6}  # valid, invalid, submitted, delivered, failed, clicked
    codes = {r["error"]["code"] for r in records if r["type"] == 5}
    assert len(codes) == 3
    small = small_message(7, 1_700_000_000)
    assert len(small) == EVENTS_PER_SMALL
    assert {r["userid"] for r in small} == {f"u{n}" for n in range(SMALL_RECIPIENTS)}
    assert {r["params"]["order_id"] for r in small} == {"o7"}


def test_growing_adds_what_is_missing_and_never_doubles(engine: Engine) -> None:
    held = stored(engine, 300)
    assert held.events == 0
    held = grow(engine, held, 2_000, broadcast_targets=300)
    broadcast_events = len(list(broadcast_records(300, 0)))
    assert held.broadcast_events == broadcast_events and held.events >= 2_000
    assert _count(engine, EVENT) == held.events
    assert stored(engine, 300) == held  # read back from the database alone
    again = grow(engine, stored(engine, 300), 5_000, broadcast_targets=300)
    assert again.small > held.small and again.events >= 5_000
    assert _count(engine, EVENT) == again.events
    assert _count(engine, MESSAGE) == 1 + again.small
    # Each broadcast recipient once on its channel, plus its UMS-level row.
    assert _count(engine, TARGET, TARGET.c.msgid == BROADCAST) == 300 + 300 - 300 // 200


def test_a_run_prints_every_read_at_every_size(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "bench", "read", "--database-url", database_url,
         "--events", "3000,6000", "--broadcast-targets", "400", "--repeats", "3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    for size in ("--- 3,", "--- 6,"):
        assert size in out
    names = [line.split(" median ")[0].strip() for line in out.splitlines() if " median " in line]
    assert names == 2 * [
        "healthz (reference)", "broadcast summary", "summary, computed", "timeline pages",
        "targets pages",
        "failed targets pages", "list ?status=", "list ?param.order_id=", "list ?since=",
    ]  # fmt: skip
    assert out.count("x healthz") == 18


def test_sizes_must_grow() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "receiver.cli", "bench", "read", "--events", "5000,1000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "growing" in result.stderr
