"""Stale targets (issue 14, point 6): a target UMS still owes a report on, heard nothing
of for STALE_AFTER, is counted in the summary, found by the targets filter and by the
metric's count; on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from sqlmodel import Session

from receiver import create_app
from receiver.db import write_transaction
from receiver.intake import record_batch
from receiver.stale import WAITING_TYPES, stale_targets
from sender.ums.protocol import STATUS_INFO, StatusType
from tests.helpers import CHANNEL, MSGID, SENT_TIME, api_get, bearer, record, walk
from tests.test_ui import page, sign_in

TARGETS = f"/api/messages/{MSGID}/targets"


def arrive(engine, records: list[dict], *, at: datetime) -> None:
    """Records taken in by the intake as if they had arrived ``at``."""
    with write_transaction(engine) as session:
        record_batch(session=session, channelkey=CHANNEL, records=records, received_at=at)


@pytest.fixture
def now() -> datetime:
    """The test's present, taken when the test runs: a clock read at import goes stale
    in a suite that runs longer than the stale window."""
    return datetime.now(UTC)


@pytest.fixture
def long_ago(now: datetime) -> datetime:
    return now - timedelta(hours=2)


@pytest.fixture
def waiting(engine, now, long_ago):
    """Targets in every situation that matters, three of them stale at ``now``."""
    arrive(
        engine,
        [
            record(2, userid="stale-submitted"),
            record(4, userid="delivered-long-ago"),
            record(2, userid="moved-on"),
            record(2, userid="only-a-duplicate-since"),
            record(0, userid="validated-by-ums", sender=0),
            record(5, userid="failed-long-ago"),
        ],
        at=long_ago,
    )
    arrive(
        engine,
        [
            record(0, userid="recent-valid", sender=0),
            record(4, userid="moved-on", sent_time=SENT_TIME + 60),
            record(2, userid="only-a-duplicate-since"),  # the same record again
        ],
        at=now - timedelta(minutes=1),
    )
    return {"stale-submitted", "only-a-duplicate-since", "validated-by-ums"}


def test_waiting_statuses_are_those_with_a_report_to_come():
    assert {STATUS_INFO[t].name for t in WAITING_TYPES} == {"target_valid", "submitted"}
    assert StatusType.DELIVERED not in WAITING_TYPES


def test_summary_counts_stale_targets(client, waiting):
    summary = api_get(client, f"/api/messages/{MSGID}").json
    assert summary["stale"] == len(waiting) == 3
    listed = api_get(client, "/api/messages").json["messages"][0]
    assert listed["stale"] == 3


def test_filter_finds_stale_targets_and_the_others(client, waiting):
    stale = walk(client, TARGETS, "targets", stale="true", limit=1)
    assert {t["recipient"] for t in stale} == waiting
    fresh = walk(client, TARGETS, "targets", stale="false")
    assert {t["recipient"] for t in fresh} == {
        "delivered-long-ago",
        "moved-on",
        "recent-valid",
        "failed-long-ago",
    }
    submitted = walk(client, TARGETS, "targets", stale="true", status="submitted")
    assert {t["recipient"] for t in submitted} == {"stale-submitted", "only-a-duplicate-since"}


def test_stale_after_comes_from_the_settings(env, waiting):
    app = create_app({**env, "STALE_AFTER": "180"})
    try:
        client = app.test_client()
        assert api_get(client, f"/api/messages/{MSGID}").json["stale"] == 0
        assert walk(client, TARGETS, "targets", stale="true") == []
    finally:
        app.extensions["umstrack.engine"].dispose()


def test_export_honours_the_filter(client, waiting):
    response = client.get(f"{TARGETS}?stale=true&format=ndjson", headers=bearer())
    assert response.status_code == 200
    assert response.get_data(as_text=True).count("\n") == len(waiting)


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", "", "true&stale=true"])
def test_a_bad_stale_value_answers_400(client, waiting, value):
    response = client.get(f"{TARGETS}?stale={value}", headers=bearer())
    assert response.status_code == 400
    assert response.json["message"].startswith("stale: ")


def test_metric_count_across_messages(engine, waiting, now, long_ago):
    arrive(engine, [record(2, msgid="second-message", userid="u1")], at=long_ago)
    with Session(engine) as session:
        assert stale_targets(session, stale_after=timedelta(minutes=30), now=now) == 4
        assert stale_targets(session, stale_after=timedelta(hours=3), now=now) == 0
        # Messages first known before the horizon are left out: bounded work per scrape.
        assert (
            stale_targets(
                session, stale_after=timedelta(minutes=30), now=now, horizon=timedelta(hours=1)
            )
            == 0
        )
        later = now + timedelta(hours=1)
        assert stale_targets(session, stale_after=timedelta(minutes=30), now=later) == 5


def test_message_page_shows_the_count_and_filters(client, waiting):
    assert sign_in(client).status_code == 302
    path = f"/ui/messages/{quote(MSGID)}"
    html = page(client, path)
    assert '<dd id="stale-total"><a href="?t.stale=true">3</a></dd>' in html
    listed = _target_table(page(client, path, **{"t.stale": "true"}))
    assert all(f">{name}</a>" in listed for name in waiting)
    assert ">delivered-long-ago</a>" in _target_table(html)
    assert ">delivered-long-ago</a>" not in listed


def _target_table(html: str) -> str:
    return html.split('id="target-table"')[1].split("</table>")[0]


def test_metrics_serve_the_count_and_reuse_it_for_a_minute(env, engine, waiting, long_ago):
    from tests.test_metrics import METRICS_TOKEN, scrape, value

    app = create_app({**env, "METRICS_TOKEN": METRICS_TOKEN})
    try:
        client = app.test_client()
        assert value(scrape(client), "umstrack_stale_targets") == len(waiting)
        arrive(engine, [record(2, msgid="second-message", userid="u1")], at=long_ago)
        # Read again only once the reading is a minute old: a scrape costs no query.
        assert value(scrape(client), "umstrack_stale_targets") == len(waiting)
        app2 = create_app({**env, "METRICS_TOKEN": METRICS_TOKEN})
        try:
            assert value(scrape(app2.test_client()), "umstrack_stale_targets") == len(waiting) + 1
        finally:
            app2.extensions["umstrack.engine"].dispose()
    finally:
        app.extensions["umstrack.engine"].dispose()
