"""``umstrack bench --compare-instances A,B``: the same batches on A servers, then on B
servers, each run into a fresh database of its own; then the two databases are compared
row for row.

One :class:`~receiver.bench_workload.Workload` makes both runs' batches, so both post
the same records (msgids, recipients, times) and each batch exactly once. The posters
take the batches in turn, so which batch reaches the database first differs between the
runs (and between servers): identical states show that intake, the duplicate check and
the stage rule do not depend on arrival order, nor on which server took a batch.

Compared, of the workload's messages: every message row, every event row and every
target row, all columns but the times of arrival (``created_at``, ``received_at``,
``updated_at``) and ``day``, the UTC day the message first came, which two runs across
midnight would rightly differ on. A warm-up, when asked for, posts other messages first
and is not compared.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Table, and_, create_engine, select, text
from sqlalchemy.engine import make_url

from sender.http import basic_auth_header

from .bench import (
    BenchOptions,
    Checked,
    Figures,
    ceiling_report,
    check,
    local_servers,
    measure_ceiling,
    post_each,
)
from .bench_workload import Workload
from .ceiling import Ceiling
from .config import Settings
from .db import make_engine
from .store import EVENT, MESSAGE, TARGET

log = logging.getLogger(__name__)

# What is compared: the table, its key, and the columns left out (times of arrival, day).
COMPARED: tuple[tuple[str, Table, tuple[str, ...], frozenset[str]], ...] = (
    ("messages", MESSAGE, ("msgid",), frozenset({"created_at", "day"})),
    ("events", EVENT, ("msgid", "event_key"), frozenset({"received_at", "day"})),
    ("targets", TARGET, ("msgid", "recipient", "sender"), frozenset({"updated_at", "day"})),
)
SHOWN = 5  # differences shown in full, per table


@dataclass
class InstanceRun:
    """One run: its servers, its figures, the ceilings around it, and its check."""

    instances: int
    urls: list[str]
    figures: Figures
    ceilings: list[Ceiling]
    checked: Checked

    @property
    def ceiling(self) -> float | None:
        return ceiling_report(self.ceilings)[0]

    def report(self) -> str:
        servers = "server" if self.instances == 1 else "servers"
        return "\n".join(
            [
                f"run          {self.instances} {servers}: {', '.join(self.urls)}",
                ceiling_report(self.ceilings)[1] if self.ceilings else "ceiling      not measured",
                self.figures.report(self.ceiling),
                self.checked.report(),
            ]
        )


def run_on(
    database_url: str,
    instances: int,
    channel: str,
    workers: int | None,
    workload: Workload,
    options: BenchOptions,
    *,
    ceiling: bool = True,
) -> InstanceRun:
    """Start ``instances`` servers on ``database_url``; measure the ceiling (unless
    ``ceiling`` is false), post ``options.warmup`` seconds of other messages (untimed),
    then ``workload``'s batches 0 to ``options.batches - 1``, each once, from
    ``options.posters`` posters spread over the servers; measure the ceiling again;
    check what was stored."""
    if options.batches is None:
        raise ValueError("a compared run posts a fixed number of batches")
    auth = basic_auth_header(*channel.split(":", 1))
    ceilings = []
    with local_servers(database_url, channel, workers, instances=instances) as urls:
        if ceiling:
            ceilings.append(measure_ceiling(database_url, channel, options))
        if options.warmup:
            log.info("warming up for %g s on other messages", options.warmup)
            other = Workload(options.workload, workload.channelkey, options.batch_size, "warmup")
            post_each(urls, auth, other.body, None, options.posters, seconds=options.warmup)
        log.info("posting %d batches, spread over %s", options.batches, ", ".join(urls))
        figures = post_each(urls, auth, workload.body, options.batches, options.posters)
        if ceiling:
            ceilings.append(measure_ceiling(database_url, channel, options))
    return InstanceRun(instances, urls, figures, ceilings, check(database_url, workload))


@dataclass
class TableDifference:
    """How one table's rows of the workload differ between two databases."""

    name: str
    rows: tuple[int, int]
    only_first: list[tuple[Any, ...]] = field(default_factory=list)
    only_second: list[tuple[Any, ...]] = field(default_factory=list)
    changed: list[tuple[Any, ...]] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # the first few, in full

    @property
    def same(self) -> bool:
        return not (self.only_first or self.only_second or self.changed)

    def report(self, first: str, second: str) -> str:
        if self.same:
            return f"{self.name:<12} {self.rows[0]:,} in each run, identical"
        lines = [
            f"{self.name:<12} {self.rows[0]:,} after {first}, {self.rows[1]:,} after {second}: "
            f"{len(self.only_first):,} only after {first}, {len(self.only_second):,} only "
            f"after {second}, {len(self.changed):,} different"
        ]
        lines += [f"  {detail}" for detail in self.details]
        return "\n".join(lines)


def compare_states(first_url: str, second_url: str, workload: Workload) -> list[TableDifference]:
    """Compare what two databases hold of ``workload``'s messages, table by table."""
    engines = [
        make_engine(Settings(database_url=url), maintenance=True) for url in (first_url, second_url)
    ]
    try:
        return [
            _compare_table(engines[0], engines[1], name, table, key, ignored, workload)
            for name, table, key, ignored in COMPARED
        ]
    finally:
        for engine in engines:
            engine.dispose()


def _compare_table(
    first: Engine,
    second: Engine,
    name: str,
    table: Table,
    key: tuple[str, ...],
    ignored: frozenset[str],
    workload: Workload,
) -> TableDifference:
    columns = [c.name for c in table.columns if c.name not in ignored and c.name not in key]
    a = _digests(first, table, key, columns, workload)
    b = _digests(second, table, key, columns, workload)
    found = TableDifference(name, (len(a), len(b)))
    found.only_first = sorted(k for k in a if k not in b)
    found.only_second = sorted(k for k in b if k not in a)
    found.changed = sorted(k for k in a if k in b and a[k] != b[k])
    for k in found.only_first[:SHOWN]:
        found.details.append(f"{_named(key, k)}: only in the first run")
    for k in found.only_second[:SHOWN]:
        found.details.append(f"{_named(key, k)}: only in the second run")
    for k in found.changed[:SHOWN]:
        rows = [_row(engine, table, key, k, columns) for engine in (first, second)]
        differing = ", ".join(
            f"{c} {_shown(rows[0][c])} / {_shown(rows[1][c])}"
            for c in columns
            if rows[0][c] != rows[1][c]
        )
        found.details.append(f"{_named(key, k)}: {differing}")
    return found


def _digests(
    engine: Engine, table: Table, key: tuple[str, ...], columns: list[str], workload: Workload
) -> dict[tuple[Any, ...], bytes]:
    """Each row's key and a digest of its compared columns (the rows themselves could be
    many: only the few that differ are read again in full)."""
    stmt = select(*(table.c[c] for c in (*key, *columns))).where(workload.mine(table))
    found: dict[tuple[Any, ...], bytes] = {}
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=10_000).execute(stmt):
            found[tuple(row[: len(key)])] = _digest(row[len(key) :])
    return found


def _digest(values: Sequence[Any]) -> bytes:
    canonical = json.dumps(list(values), sort_keys=True, default=str)
    return hashlib.blake2b(canonical.encode(), digest_size=16).digest()


def _row(
    engine: Engine, table: Table, key: tuple[str, ...], values: tuple[Any, ...], columns: list[str]
) -> dict[str, Any]:
    stmt = select(*(table.c[c] for c in columns)).where(
        and_(*(table.c[c] == v for c, v in zip(key, values, strict=True)))
    )
    with engine.connect() as conn:
        return dict(conn.execute(stmt).one()._mapping)


def _shown(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else repr(value)


def _named(key: tuple[str, ...], values: tuple[Any, ...]) -> str:
    return " ".join(f"{c}={v}" for c, v in zip(key, values, strict=True))


@dataclass
class Comparison:
    """Two runs of the same batches, and how their databases differ."""

    runs: list[InstanceRun]
    tables: list[TableDifference]

    @property
    def holds(self) -> bool:
        """Both runs' batches all acknowledged and checked, and the states identical."""
        return all(not r.figures.errors and r.checked.holds for r in self.runs) and all(
            t.same for t in self.tables
        )

    def report(self) -> str:
        first, second = (self._label(r) for r in self.runs)
        lines = [r.report() for r in self.runs]
        lines += [t.report(first, second) for t in self.tables]
        rates = [r.figures.rate for r in self.runs]
        ratio = f"; events/s {second} / {first} = {rates[1] / rates[0]:.2f}"
        if all(t.same for t in self.tables):
            verdict = f"SAME: every message, event and target after {second} as after {first}"
        else:
            verdict = f"DIFFERENT: the state after {second} is not the state after {first}"
        failed = [self._label(r) for r in self.runs if r.figures.errors or not r.checked.holds]
        if failed:
            verdict += f" (and {', '.join(failed)}: a batch not acknowledged, or the check failed)"
        lines.append(f"verdict      {verdict}{ratio}")
        return "\n".join(lines)

    @staticmethod
    def _label(run: InstanceRun) -> str:
        return f"{run.instances} server" + ("" if run.instances == 1 else "s")


def compare_instances(
    database_urls: Sequence[str],
    instances: Sequence[int],
    channel: str,
    workers: int | None,
    options: BenchOptions,
) -> Comparison:
    """The same batches of ``options.workload`` posted on ``instances[0]`` servers into
    ``database_urls[0]`` (fresh), then on ``instances[1]`` into ``database_urls[1]``;
    the two databases compared."""
    channelkey = channel.split(":", 1)[0]
    workload = Workload(options.workload, channelkey, options.batch_size, f"{int(time.time())}")
    runs = [
        run_on(url, n, channel, workers, workload, options)
        for url, n in zip(database_urls, instances, strict=True)
    ]
    return Comparison(runs, compare_states(database_urls[0], database_urls[1], workload))


@contextlib.contextmanager
def fresh_databases(database_url: str | None, count: int) -> Iterator[list[str]]:
    """``count`` new, empty databases, dropped afterwards: SQLite files in a temporary
    directory (no ``database_url``), or databases made on ``database_url``'s PostgreSQL
    server, named after its database, this process and their place (the user needs the
    right to create databases). Never one that existed before."""
    if database_url is None:
        with tempfile.TemporaryDirectory() as tmp:
            yield [f"sqlite:///{tmp}/compare{n + 1}.db" for n in range(count)]
        return
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("fresh databases are made on PostgreSQL, or as temporary SQLite files")
    base = (url.database or "umstrack")[:40]
    names = [f"{base}_compare{os.getpid()}_{n + 1}" for n in range(count)]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    made: list[str] = []
    try:
        for name in names:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))  # fails when it exists
            made.append(name)
        log.info("made databases %s", ", ".join(made))
        yield [url.set(database=name).render_as_string(hide_password=False) for name in names]
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if (conn.dialect.server_version_info or ()) >= (13,) else ""
            for name in made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"{force}'))
        admin.dispose()
        if made:
            log.info("dropped databases %s", ", ".join(made))
