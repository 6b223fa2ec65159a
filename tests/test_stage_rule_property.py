"""The stage rule as a property: whatever the order, repetition and batching of a set of
status records, each target ends with the status the rule decides (README, "Callback
intake"), stored one batch after another and from concurrent posters over real HTTP.

The expected targets come from a small oracle written here from the rule itself, not
from the code under test. Every example writes under msgids of its own, so the examples
share one database. The number of examples is fixed (100 stored directly, 15 posted to one
gunicorn per backend) and no example database is kept.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlmodel import Session, col

from receiver.db import write_transaction
from receiver.intake import record_batch
from receiver.local import running_server
from receiver.models import Target
from tests.helpers import CHANNEL, SENT_TIME, basic_auth, record

# --- The oracle: the rule as the README states it -----------------------------------

# validation < submission < delivery < engagement < withdrawal; in each, (success, failure).
STAGES: tuple[tuple[int, ...], ...] = ((0, 1), (2, 3), (4, 5), (6,), (7, 8))
SUCCESS = frozenset({0, 2, 4, 6, 7})
STAGE_NAMES = ("validation", "submission", "delivery", "engagement", "withdrawal")


def oracle_rank(type_: int) -> int:
    """A later stage always wins; within a stage a success beats a failure."""
    stage = next(i for i, types in enumerate(STAGES) if type_ in types)
    return stage * 2 + (type_ in SUCCESS)


@dataclass(frozen=True)
class Expected:
    type: int
    rank: int
    reached_at: datetime
    event_count: int
    userid: str | None
    sender_id: str | None
    # Per stage, in STAGES order: (type, time, error code, error message) or None.
    stages: tuple[tuple[int, datetime, int | None, str | None] | None, ...]


def expected_stage(group: list[dict[str, Any]], types: tuple[int, ...]) -> Any:
    """A stage's outcome: its success if any (earliest), else its failure (earliest,
    with that record's error); None when the stage was never heard of."""
    for type_ in types:  # the success first
        reached = [r for r in group if r["type"] == type_]
        if reached:
            # Of the earliest, the lowest error: none first, then by code, then message.
            first = min(reached, key=lambda r: (r["sent_time"], error_key(r)))
            error = first.get("error") or {}
            return (
                type_,
                datetime.fromtimestamp(first["sent_time"], UTC),
                error.get("code"),
                error.get("message"),
            )
    return None


def error_key(r: dict[str, Any]) -> tuple[bool, int, bool, str]:
    error = r.get("error") or {}
    code, message = error.get("code"), error.get("message")
    return (code is not None, code or 0, message is not None, message or "")


def expected_targets(records: list[dict[str, Any]]) -> dict[tuple[str, str, int], Expected]:
    """Each target's current status from its distinct records, arrival order unknown."""
    distinct = {json.dumps(r, sort_keys=True): r for r in records}.values()
    by_target: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in distinct:
        recipient = r.get("userid") or r["sender_id"]
        by_target.setdefault((r["msgid"], recipient, r["sender"]), []).append(r)
    expected = {}
    for key, group in by_target.items():
        best = max(oracle_rank(r["type"]) for r in group)
        winners = [r for r in group if oracle_rank(r["type"]) == best]
        (type_,) = {r["type"] for r in winners}
        expected[key] = Expected(
            type=type_,
            rank=best,
            reached_at=datetime.fromtimestamp(min(r["sent_time"] for r in winners), UTC),
            event_count=len(group),
            userid=group[0].get("userid") or None,
            sender_id=group[0]["sender_id"],
            stages=tuple(expected_stage(group, types) for types in STAGES),
        )
    return expected


def stored_stages(t: Target) -> tuple[Any, ...]:
    """A target row's stages, shaped like :func:`expected_stage`'s."""
    stages = []
    for name, _types in zip(STAGE_NAMES, STAGES, strict=True):
        type_ = getattr(t, f"{name}_type")
        if type_ is None:
            stages.append(None)
            continue
        code = getattr(t, f"{name}_error_code", None)
        message = getattr(t, f"{name}_error_message", None)
        stages.append((type_, getattr(t, f"{name}_at"), code, message))
    return tuple(stages)


def stored_targets(engine: Engine, msgids: set[str]) -> dict[tuple[str, str, int], Expected]:
    """The target rows of ``msgids`` (only theirs: the table grows with every example)."""
    with Session(engine) as session:
        rows = session.scalars(select(Target).where(col(Target.msgid).in_(msgids)))
        return {
            (t.msgid, t.recipient, t.sender): Expected(
                t.type, t.rank, t.reached_at, t.event_count, t.userid, t.sender_id, stored_stages(t)
            )
            for t in rows
        }


# --- The data: distinct records, then deliveries and batches ------------------------


@dataclass(frozen=True)
class Scenario:
    """Distinct records as (target, type, sent_time offset, variant), and how they
    arrive: ``batches`` of indices into ``records``, repeats included."""

    targets: tuple[tuple[int, int, int, bool], ...]  # (msgid no., user no., sender, userid?)
    records: tuple[tuple[int, int, int, int], ...]
    batches: tuple[tuple[int, ...], ...]

    def build(self, prefix: str) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
        """The records under msgids ``prefix-0`` and ``prefix-1``, and the batches."""
        built = []
        for target, type_, offset, variant in self.records:
            msgno, user, sender, has_userid = self.targets[target]
            rec = record(
                type_,
                msgid=f"{prefix}-{msgno}",
                userid=f"u{user}" if has_userid else "",
                sender=sender,
                sender_id=f"sid-u{user}-{sender}",
                sent_time=SENT_TIME + offset,
            )
            if variant:  # same type, same second, yet another event: an unknown field
                rec["trace"] = variant
                if "error" in rec:  # and another error: which one stays is the rule's
                    code, message = rec["error"]["code"], rec["error"]["message"]
                    rec["error"] = (
                        {"code": code, "message": f"other {message}"}
                        if variant == 1
                        else {"code": code - 1000, "message": message}
                    )
            built.append(rec)
        batches = [[built[i] for i in batch] for batch in self.batches]
        # Said with note(), not left to Hypothesis's report: schemathesis's pytest plugin
        # replaces Hypothesis's pretty-printer, which leaves "Failing test case" blank.
        note(f"{self!r}\nbatches (msgid, recipient, sender, type, sent_time, trace):")
        for batch in batches:
            note(" ".join(describe(rec) for rec in batch))
        return built, batches


def describe(rec: dict[str, Any]) -> str:
    """A record in one short line: (msgid no., recipient, sender, type, +seconds, trace)."""
    fields = (
        rec["msgid"][-1],
        rec["userid"] or rec["sender_id"],
        rec["sender"],
        rec["type"],
        f"+{rec['sent_time'] - SENT_TIME}",
        rec.get("trace", 0),
    )
    return "(" + ",".join(map(str, fields)) + ")"


@st.composite
def scenarios(draw: st.DrawFn, *, max_records: int) -> Scenario:
    target_list = draw(
        st.lists(
            st.tuples(
                st.integers(0, 1),
                st.integers(0, 2),
                st.sampled_from([1, 5]),
                st.booleans(),
            ),
            min_size=1,
            max_size=3,
            # distinct targets: (msgid, recipient, sender)
            unique_by=lambda t: (t[0], t[1] if t[3] else f"sid{t[1]}", t[2]),
        )
    )
    records = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(target_list) - 1),
                st.integers(0, 8),
                st.integers(0, 3),  # few seconds: ties within a rank are common
                st.integers(0, 2),  # another event of the same time (and error)
            ),
            min_size=1,
            max_size=max_records,
            unique=True,
        )
    )
    n = len(records)
    # Every record once, some again, in any order; then cut into batches.
    repeats = draw(st.lists(st.integers(0, n - 1), max_size=n))
    deliveries = draw(st.permutations([*range(n), *repeats]))
    places = range(1, len(deliveries))
    cuts = draw(st.sets(st.sampled_from(places), max_size=6)) if places else set()
    bounds = [0, *sorted(cuts), len(deliveries)]
    batches = tuple(tuple(deliveries[a:b]) for a, b in pairwise(bounds))
    return Scenario(tuple(target_list), tuple(records), batches)


def check(engine: Engine, prefix: str, records: list[dict[str, Any]], answers: list[Any]) -> None:
    """The stored targets are the oracle's; every record was stored once, repeats not."""
    delivered = sum(a["received"] for a in answers)
    assert sum(a["quarantined"] for a in answers) == 0
    assert sum(a["stored"] for a in answers) == len(records)
    assert sum(a["duplicates"] for a in answers) == delivered - len(records)
    msgids = {f"{prefix}-0", f"{prefix}-1"}
    assert stored_targets(engine, msgids) == expected_targets(records)


# --- (a) one batch after another through record_batch -------------------------------


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(scenario=scenarios(max_records=12))
# Two failures of one time, the second batch's error the lower: it must replace the first.
@example(
    scenario=Scenario(
        targets=((0, 0, 1, False),),
        records=((0, 3, 0, 1), (0, 3, 0, 0), (0, 0, 0, 0)),
        batches=((0,), (1, 2)),
    )
)
def test_stage_rule_whatever_the_order_repeats_and_batches(engine, scenario):
    prefix = f"prop-{uuid.uuid4().hex}"
    records, batches = scenario.build(prefix)
    answers = []
    for batch in batches:
        with write_transaction(engine) as session:
            result = record_batch(session=session, channelkey=CHANNEL, records=batch)
        answers.append(result.model_dump())
    check(engine, prefix, records, answers)


# --- (b) concurrent posters over real HTTP against gunicorn -------------------------

POSTERS = 4


@pytest.fixture
def served(env, tmp_path) -> Iterator[str]:
    """``umstrack serve`` (gunicorn, 2 workers) on the test's database."""
    server_env = {**env, "WEB_CONCURRENCY": "2", "GUNICORN_ACCESSLOG": ""}
    with open(tmp_path / "serve.log", "w") as log, running_server(server_env, output=log) as url:
        yield url


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(max_records=20))
def test_stage_rule_with_concurrent_posters_over_http(served, engine, scenario):
    prefix = f"prop-{uuid.uuid4().hex}"
    records, batches = scenario.build(prefix)
    shares = [batches[i::POSTERS] for i in range(POSTERS)]
    shares = [share for share in shares if share]
    start = threading.Barrier(len(shares))
    answers: list[Any] = []
    failures: list[str] = []

    def poster(share: list[list[dict[str, Any]]]) -> None:
        with requests.Session() as http:
            start.wait(timeout=30)
            for batch in share:
                response = http.post(
                    f"{served}/callbacks/ums", json=batch, headers=basic_auth(), timeout=(2, 30)
                )
                if response.status_code == 200:
                    answers.append(response.json())
                else:
                    failures.append(f"{response.status_code} {response.text}")

    threads = [threading.Thread(target=poster, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(answers) == len(batches)
    check(engine, prefix, records, answers)
