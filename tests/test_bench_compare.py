"""``umstrack bench --compare-instances``: the same batches on one server and on two,
each into a fresh database, leave the same messages, events and targets; and the
comparison sees a difference when there is one. The mixed workload is what makes the
identity mean something: each recipient's records are spread over several batches, out
of order, with failures and repeats."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, text, update
from sqlalchemy.engine import make_url

from receiver.bench import BENCH_CHANNEL, BenchOptions, check
from receiver.bench_compare import Comparison, compare_states, run_on
from receiver.bench_workload import MIXED_GROUP, Workload
from receiver.config import Settings, normalize_database_url
from receiver.db import make_engine, migrate, write_transaction
from receiver.intake import record_batch
from receiver.status import RANK_BY_TYPE
from receiver.store import EVENT, TARGET
from tests.conftest import TEST_DATABASE_URL, fresh_postgres_schema
from tests.helpers import CHANNEL, SENT_TIME

ALL_TYPES = set(range(9))


@pytest.fixture
def two_databases(backend: str, tmp_path: Path) -> Iterator[list[str]]:
    """Two fresh, migrated databases (SQLite files, or PostgreSQL schemas)."""
    with ExitStack() as stack:
        if backend == "sqlite":
            urls = [f"sqlite:///{tmp_path}/run{n}.db" for n in (1, 2)]
        else:
            urls = [stack.enter_context(fresh_postgres_schema()) for _ in (1, 2)]
        for url in urls:
            migrate(url)
        yield urls


def _targets(workload: Workload, batches: int) -> dict[tuple[str, str, int], list[dict]]:
    """Each target's records, in the order of the batches."""
    found: dict[tuple[str, str, int], list[dict]] = {}
    for index in range(batches):
        for r in workload.records(index):
            found.setdefault((r["msgid"], r["userid"], r["sender"]), []).append(r)
    return found


def _mixed(channelkey: str, batch_size: int) -> Workload:
    """A mixed workload whose msgid and time are fixed: the same records in every run."""
    return Workload("mixed", channelkey, batch_size, "1", msgid="v:1t:1p:1n:mixed", now=SENT_TIME)


def test_the_mixed_workload_is_the_same_every_time_and_has_what_the_stage_rule_decides() -> None:
    workload = _mixed("ck", 50)
    again = Workload("mixed", "ck", 50, "2", msgid=workload.msgid, now=workload.now)
    batches = 4 * MIXED_GROUP
    assert [workload.body(i) for i in range(batches)] == [again.body(i) for i in range(batches)]
    for index in range(batches):  # one record of each recipient a batch
        assert len({r["userid"] for r in workload.records(index)}) == 50
    targets = _targets(workload, batches)
    records = [r for rs in targets.values() for r in rs]
    assert {r["type"] for r in records} == ALL_TYPES
    keys = [json.dumps(r, sort_keys=True) for r in records]
    assert len(set(keys)) < len(keys) * 0.8  # records posted again: duplicates
    # Two failures of one stage at different times (the earlier one's error stays), and
    # a failure, then a success in one stage; no two distinct records of a target tie.
    twice_failed = failed_then_done = 0
    for rs in targets.values():
        distinct = list({json.dumps(r, sort_keys=True): r for r in rs}.values())
        assert len({(r["type"], r["sent_time"]) for r in distinct}) == len(distinct)
        types = [r["type"] for r in distinct]
        twice_failed += types.count(3) == 2 or types.count(5) == 2
        failed_then_done += (3 in types and 2 in types) or (5 in types and 4 in types)
    assert twice_failed > 5 and failed_then_done > 20
    # expected() counts a record posted again once.
    workload.made = batches
    assert workload.expected()[0] == len(set(keys))


def test_the_mixed_workload_would_tell_an_order_dependent_rule() -> None:
    """The status a target ends with when the last record to arrive wins differs between
    posting the batches forwards and backwards for many targets: a rule that depended
    on arrival order could not leave two runs' states identical."""
    workload = _mixed("ck", 100)
    differ = 0
    for rs in _targets(workload, 2 * MIXED_GROUP).values():
        differ += rs[-1]["type"] != rs[0]["type"]
        best = max(RANK_BY_TYPE[r["type"]] for r in rs)  # what the stage rule keeps
        assert best == max(RANK_BY_TYPE[r["type"]] for r in reversed(rs))
    assert differ > 50


def _post(url: str, workload: Workload, order: list[int], *, reverse_records: bool) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        for index in order:
            records = json.loads(workload.body(index))
            with write_transaction(engine) as session:
                record_batch(
                    session=session,
                    channelkey=CHANNEL,
                    records=records[::-1] if reverse_records else records,
                )
    finally:
        engine.dispose()


def test_batches_stored_in_opposite_orders_compare_identical_and_a_change_is_found(
    two_databases: list[str],
) -> None:
    first, second = two_databases
    workload = _mixed(CHANNEL, 30)
    order = list(range(2 * MIXED_GROUP))
    _post(first, workload, order, reverse_records=False)
    _post(second, workload, order[::-1], reverse_records=True)
    assert check(first, workload).holds and check(second, workload).holds
    tables = compare_states(first, second, workload)
    assert [t.name for t in tables] == ["messages", "events", "targets"]
    assert all(t.same for t in tables), [t.report("first", "second") for t in tables]
    assert tables[2].report("a", "b") == "targets      120 in each run, identical"
    _corrupt(second, workload)
    messages, events, targets = compare_states(first, second, workload)
    assert messages.same
    assert (len(events.only_first), len(events.only_second), len(events.changed)) == (1, 0, 0)
    assert events.details[0].endswith(": only in the first run")
    assert (len(targets.only_first), len(targets.changed)) == (0, 2)
    assert any("delivery_error_message 'device not reachable' / 'changed'" in d
               for d in targets.details)  # fmt: skip
    assert any("submission_at " in d for d in targets.details)
    assert "0 only after 2 servers, 2 different" in targets.report("1 server", "2 servers")


def _corrupt(url: str, workload: Workload, *, only_one_error: bool = False) -> None:
    """Between the runs and the comparison: change one target's delivery error; unless
    ``only_one_error``, also move another's submission time by a second and delete an
    event."""
    engine = create_engine(url)
    mine = workload.mine(TARGET)
    key = (TARGET.c.msgid, TARGET.c.recipient, TARGET.c.sender)
    with engine.begin() as conn:
        failed = conn.execute(
            TARGET.select().where(mine, TARGET.c.delivery_error_message == "device not reachable")
        ).first()
        assert failed is not None
        conn.execute(
            update(TARGET)
            .where(*(c == failed._mapping[c.name] for c in key))
            .values(delivery_error_message="changed")
        )
        if not only_one_error:
            submitted = conn.execute(
                TARGET.select().where(mine, TARGET.c.submission_type == 2)
            ).first()
            assert submitted is not None
            conn.execute(
                update(TARGET)
                .where(*(c == submitted._mapping[c.name] for c in key))
                .values(submission_at=submitted.submission_at + timedelta(seconds=1))
            )
            event = conn.execute(EVENT.select().where(workload.mine(EVENT)).limit(1)).one()
            conn.execute(
                delete(EVENT).where(
                    EVENT.c.msgid == event.msgid, EVENT.c.event_key == event.event_key
                )
            )
    engine.dispose()


def test_one_server_and_two_leave_the_same_state_unless_it_was_changed(
    two_databases: list[str],
) -> None:
    """Through the servers: the same batches on one server and on two (fresh databases),
    posters at once; the states compare identical. One target's error changed in the
    second database between the run and the comparison makes the comparison fail."""
    options = BenchOptions(posters=4, batch_size=50, batches=4 * MIXED_GROUP, warmup=0,
                           workload="mixed")  # fmt: skip
    channelkey = BENCH_CHANNEL.split(":", 1)[0]
    workload = _mixed(channelkey, options.batch_size)
    runs = [run_on(url, n, BENCH_CHANNEL, 1, workload, options, ceiling=False)
            for url, n in zip(two_databases, (1, 2), strict=True)]  # fmt: skip
    assert [len(r.urls) for r in runs] == [1, 2]
    assert all(r.figures.batches == options.batches and not r.figures.errors for r in runs)
    assert all(r.checked.holds for r in runs)
    same = Comparison(runs, compare_states(*two_databases, workload))
    assert same.holds, same.report()
    verdict = same.report().splitlines()[-1]
    assert verdict.startswith(
        "verdict      SAME: every message, event and target after 2 servers as after 1 server; "
        "events/s 2 servers / 1 server = "
    )
    _corrupt(two_databases[1], workload, only_one_error=True)
    changed = Comparison(runs, compare_states(*two_databases, workload))
    assert not changed.holds
    assert (
        "targets      400 after 1 server, 400 after 2 servers: 0 only after 1 server, "
        "0 only after 2 servers, 1 different"
    ) in changed.report()
    assert (
        changed.report()
        .splitlines()[-1]
        .startswith(
            "verdict      DIFFERENT: the state after 2 servers is not the state after 1 server"
        )
    )


def _umstrack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "receiver.cli", "bench", *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--compare-instances", "1,2"], "needs --batches N"),
        (["--compare-instances", "1", "--batches", "6"], "not two counts of servers"),
        (["--compare-instances", "1,0", "--batches", "6"], "not two counts of servers"),
        (["--compare-instances", "1,2", "--batches", "6", "--url", "http://127.0.0.1:9"],
         "starts its own servers"),
        (["--compare-instances", "1,2", "--batches", "6", "--instances", "2"],
         "no --instances"),
        (["--compare-instances", "1,2", "--batches", "6", "--database-url", "sqlite:///x.db"],
         "on PostgreSQL, or none given"),
    ],
)  # fmt: skip
def test_compare_instances_refuses_what_it_cannot_compare(args: list[str], said: str) -> None:
    result = _umstrack(*args)
    assert result.returncode == 2 and said in result.stderr


COMMAND = ["--compare-instances", "1,2", "--workload", "mixed", "--batches", "12",
           "--posters", "3", "--warmup", "0.5"]  # fmt: skip


def test_the_command_compares_one_server_and_two_on_sqlite_files_of_its_own() -> None:
    result = _umstrack(*COMMAND)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "workload     mixed: the same 12 batches of 100 on 1 and on 2 servers" in out
    assert "run          1 server: http://127.0.0.1:" in out
    assert out.count("ceiling      SQLite executemany ") == 2 and " of the ceiling (" in out
    assert out.count("checked      ") == 2 and "events       " in out
    assert "targets      " in out and "\nverdict      SAME: " in out


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs TEST_DATABASE_URL")
def test_the_command_compares_in_postgresql_databases_it_makes_and_drops() -> None:
    url = normalize_database_url(TEST_DATABASE_URL)
    result = _umstrack(*COMMAND, "--database-url", url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ceiling      PostgreSQL COPY ") == 2
    assert "\nverdict      SAME: " in result.stdout
    made = result.stdout.split("made databases ", 1)[1].split("\n", 1)[0].split(", ")
    assert len(made) == 2 and f"dropped databases {', '.join(made)}" in result.stdout
    assert all(name.startswith(f"{make_url(url).database}_compare") for name in made)
    engine = create_engine(url)
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT datname FROM pg_database WHERE datname = ANY(:names)"), {"names": made}
        ).all()
    engine.dispose()
    assert left == []
