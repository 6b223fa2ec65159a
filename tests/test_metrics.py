"""GET /metrics: who may scrape, what is counted (callbacks by channel and status, answers
by route and status, lag, database errors, sends), and the sum over gunicorn workers.

Counters live as long as the test process: in-process tests compare before and after.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from receiver import create_app
from receiver.db import get_session
from receiver.local import running_server
from receiver.models import Quarantine
from receiver.web.metrics import add_gauge
from sender.ums.protocol import STATUS_BY_TYPE, channel_name
from tests.fake_ums import FakeUms, Reply
from tests.helpers import (
    API_TOKEN,
    CHANNEL,
    SECRET,
    SENT_TIME,
    basic_auth,
    bearer,
    nine_type_batch,
    post,
    record,
)
from tests.test_database_down import postgres_outage_switch, sqlite_outage_switch

METRICS_TOKEN = "metrics-token-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: Samples, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def total(scraped: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in scraped.items() if n == name and wanted <= have)


def grown(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)


def by_channel_and_status(before: Samples, after: Samples, outcome: str) -> Counter:
    """How much each (channel, status) of CHANNEL's callback records grew for ``outcome``."""
    grew: Counter = Counter()
    for (name, have), v in after.items():
        labels = dict(have)
        if (
            name == "umstrack_callback_records_total"
            and labels["channelkey"] == CHANNEL
            and labels["outcome"] == outcome
        ):
            grew[labels["channel"], labels["status"]] += v - before.get((name, have), 0)
    return Counter({key: n for key, n in grew.items() if n})


def scrape(client: Any, token: str = METRICS_TOKEN) -> Samples:
    response = client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


@pytest.fixture
def metrics_app(env: dict[str, str]) -> Iterator[Flask]:
    app = create_app({**env, "METRICS_TOKEN": METRICS_TOKEN})
    yield app
    app.extensions["umstrack.engine"].dispose()


@pytest.fixture
def mclient(metrics_app: Flask) -> Any:
    return metrics_app.test_client()


# --- who may scrape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token"),
        bearer(API_TOKEN),  # an API token is not the metrics token
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "api-token", "basic", "empty"],
)
def test_metrics_with_a_token_set_refuse_anyone_without_it(mclient, headers):
    response = mclient.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert "METRICS_TOKEN" in response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_metrics_with_a_token_set_answer_with_it_even_on_every_interface(env):
    app = create_app({**env, "METRICS_TOKEN": METRICS_TOKEN, "HOST": "0.0.0.0"})
    try:
        scraped = scrape(app.test_client())
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert any(name.startswith("umstrack_http_requests") for name, _ in scraped)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_metrics_without_a_token_answer_on_a_loopback_bind(env, host):
    app = create_app({**env, "HOST": host})
    try:
        response = app.test_client().get("/metrics")
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert response.status_code == 200
    assert "umstrack_callback_records_total" in response.get_data(as_text=True)


@pytest.mark.parametrize("host", [None, "0.0.0.0", "::", "10.0.0.5", "example.com"])
def test_metrics_without_a_token_are_refused_on_any_other_bind(env, host):
    app = create_app({**env, **({"HOST": host} if host else {})})
    try:
        response = app.test_client().get("/metrics", headers=bearer(METRICS_TOKEN))
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert response.status_code == 404
    assert response.json["error"] == "metrics_disabled"
    assert "set METRICS_TOKEN" in response.json["message"]


# --- what is counted --------------------------------------------------------------------


def test_callbacks_are_counted_by_channel_status_and_outcome(mclient):
    before = scrape(mclient)
    batch = nine_type_batch(18)  # two of each status, channels by sender % 11
    bad = [{"msgid": "m", "type": 42, "sender": 5}, "not a record", {"type": [1], "sender": True}]
    assert post(mclient, batch + bad).json == {
        "received": 21,
        "stored": 18,
        "duplicates": 0,
        "quarantined": 3,
    }
    assert post(mclient, batch[:5]).json["duplicates"] == 5
    after = scrape(mclient)

    def records(outcome: str) -> float:
        return grown(before, after, "umstrack_callback_records_total", channelkey=CHANNEL,
                     outcome=outcome)  # fmt: skip

    assert [records(o) for o in ("received", "stored", "duplicate", "quarantined")] == [
        26,
        18,
        5,
        3,
    ]
    expected = Counter(
        (channel_name(r["sender"], wechatwk_sender=r.get("wechatwk_sender")),
         STATUS_BY_TYPE[r["type"]])
        for r in batch + batch[:5]
    )  # fmt: skip
    bad_labels = Counter(
        {
            ("sms", "unreadable"): 1,  # type 42
            ("none", "unreadable"): 1,  # not an object
            ("unknown", "unreadable"): 1,  # true is not the sender 1 (app)
        }
    )
    assert by_channel_and_status(before, after, "received") == expected + bad_labels
    assert expected[("ums", "target_valid")] == 2 and expected[("wechatwk", "target_valid")] == 1
    # What became of each: the first batch's records stored, the repeats duplicates, the
    # bad ones quarantined, each under its own channel and status.
    first = Counter(
        (channel_name(r["sender"], wechatwk_sender=r.get("wechatwk_sender")),
         STATUS_BY_TYPE[r["type"]])
        for r in batch
    )  # fmt: skip
    assert by_channel_and_status(before, after, "stored") == first
    assert by_channel_and_status(before, after, "duplicate") == expected - first
    assert by_channel_and_status(before, after, "quarantined") == bad_labels


def test_undocumented_channels_share_one_label(mclient):
    before = scrape(mclient)
    batch = [record(4, userid=f"u{n}", sender=n) for n in range(200, 230)]
    assert post(mclient, batch).json["stored"] == 30
    after = scrape(mclient)
    assert grown(before, after, "umstrack_callback_records_total", channelkey=CHANNEL,
                 channel="unknown", status="delivered", outcome="stored") == 30  # fmt: skip
    assert not any("unknown:" in str(labels) or "'210'" in str(labels) for _, labels in after)


def test_callback_lag_is_arrival_minus_the_oldest_sent_time_per_channel(mclient):
    before = scrape(mclient)
    batch = [
        record(4, userid="a", sender=5, sent_time=SENT_TIME),  # seconds: the oldest SMS
        record(4, userid="b", sender=5, sent_time=SENT_TIME + 50),
        record(4, userid="c", sender=5, sent_time=None),  # none: no lag
        record(4, userid="d", sender=1, sent_time=(SENT_TIME + 100) * 1000),  # milliseconds
    ]
    assert post(mclient, batch).json["stored"] == 4
    arrived = time.time()
    after = scrape(mclient)

    def lag(channel: str) -> tuple[float, float]:
        return (
            delta(before, after, "umstrack_callback_lag_seconds_count", channel=channel),
            delta(before, after, "umstrack_callback_lag_seconds_sum", channel=channel),
        )

    count, total = lag("sms")
    assert count == 1 and arrived - SENT_TIME - 60 < total <= arrived - SENT_TIME
    count, total = lag("app")
    assert count == 1 and arrived - SENT_TIME - 160 < total <= arrived - SENT_TIME - 100
    # Three years late: past the last bucket.
    assert delta(before, after, "umstrack_callback_lag_seconds_bucket", channel="sms",
                 le="86400.0") == 0  # fmt: skip


def test_answers_are_counted_by_route_and_status(mclient, metrics_app):
    before = scrape(mclient)
    assert post(mclient, [], headers={}).status_code == 401
    assert post(mclient, [], headers=basic_auth(CHANNEL, "wrong")).status_code == 401
    too_big = b"[" + b" " * metrics_app.config["MAX_CONTENT_LENGTH"] + b"]"
    assert post(mclient, too_big).status_code == 413
    assert mclient.get("/no/such/path/0123456789").status_code == 404
    assert mclient.open("/healthz", method="BREW").status_code == 405
    after = scrape(mclient)

    route = "/callbacks/ums"
    assert delta(before, after, "umstrack_http_requests_total", route=route, method="POST",
                 status="401") == 2  # fmt: skip
    assert delta(before, after, "umstrack_http_requests_total", route=route, method="POST",
                 status="413") == 1  # fmt: skip
    # No raw path, no invented method becomes a label.
    assert delta(before, after, "umstrack_http_requests_total", route="unmatched",
                 method="GET", status="404") == 1  # fmt: skip
    assert delta(before, after, "umstrack_http_requests_total", route="unmatched",
                 method="other", status="405") == 1  # fmt: skip
    assert not any("0123456789" in str(labels) or "BREW" in str(labels) for _, labels in after)
    assert delta(before, after, "umstrack_http_request_duration_seconds_count", route=route,
                 method="POST") == 3  # fmt: skip


@pytest.fixture
def outage_app(backend, database_url):
    switch = sqlite_outage_switch if backend == "sqlite" else postgres_outage_switch
    with switch(database_url) as (app_url, go_down, come_back):
        app = create_app(
            {
                "DATABASE_URL": app_url,
                "SQLITE_BUSY_TIMEOUT_MS": "200",
                "UMS_CHANNELS": f"{CHANNEL}:{SECRET}",
                "METRICS_TOKEN": METRICS_TOKEN,
                "SPOOL_DIR": "off",
            }
        )
        yield app, go_down, come_back
        app.extensions["umstrack.engine"].dispose()


def test_database_errors_and_503s_are_counted(outage_app):
    app, go_down, come_back = outage_app
    client = app.test_client()
    assert post(client, nine_type_batch(3, msgid="warm")).status_code == 200
    before = scrape(client)
    go_down()
    try:
        assert post(client, nine_type_batch(9)).status_code == 503
    finally:
        come_back()
    after = scrape(client)  # the scrape itself needs no database
    assert delta(before, after, "umstrack_database_errors_total", where="request",
                 error="unavailable") == 1  # fmt: skip
    assert delta(before, after, "umstrack_http_requests_total", route="/callbacks/ums",
                 method="POST", status="503") == 1  # fmt: skip
    # Received, never stored.
    assert grown(before, after, "umstrack_callback_records_total", channelkey=CHANNEL,
                 outcome="received") == 9  # fmt: skip
    assert grown(before, after, "umstrack_callback_records_total", channelkey=CHANNEL,
                 outcome="stored") == 0  # fmt: skip


def test_outbox_sends_are_counted_by_outcome(env):
    with FakeUms({CHANNEL: SECRET}) as fake:
        app = create_app(
            {
                **env,
                "UMS_API_BASE": fake.url,
                "PUBLIC_URL": "https://umstrack.example.com",
                "METRICS_TOKEN": METRICS_TOKEN,
            }
        )
        try:
            client = app.test_client()
            before = scrape(client)
            fake.queue(Reply(), Reply(400, {"code": 1015029, "message": "quota used up"}))
            message = {
                "aud_userid": [f"u{i}" for i in range(2500)],  # three requests
                "msg_sms": [{"temp_id": 1, "temp_para": {"code": "1"}}],
            }
            response = client.post("/api/messages", json=message, headers=bearer())
            assert response.status_code == 502
            after = scrape(client)
        finally:
            app.extensions["umstrack.engine"].dispose()
    outcomes = {
        outcome: delta(
            before, after, "umstrack_outbox_sends_total", provider="ums", outcome=outcome
        )  # fmt: skip
        for outcome in ("sent", "refused", "not_sent", "unknown")
    }
    assert outcomes == {"sent": 1, "refused": 1, "not_sent": 1, "unknown": 0}


def test_a_gauge_added_is_read_from_the_database_at_each_scrape(metrics_app, mclient):
    def quarantined() -> float:
        return float(get_session().scalar(select(func.count()).select_from(Quarantine)) or 0)

    add_gauge(metrics_app, "umstrack_test_quarantined", "Rows in quarantine.", quarantined)
    add_gauge(
        metrics_app,
        "umstrack_test_by_label",
        "Values by label.",
        lambda: {("a",): 1.0, ("b",): 2.0},
        labels=("kind",),
    )
    assert value(scrape(mclient), "umstrack_test_quarantined") == 0
    post(mclient, [{"type": 1}, {"type": 2}])  # no msgid: both quarantined
    scraped = scrape(mclient)
    assert value(scraped, "umstrack_test_quarantined") == 2
    assert value(scraped, "umstrack_test_by_label", kind="b") == 2


def test_a_gauge_that_fails_is_left_out_and_the_scrape_answers(metrics_app, mclient):
    def broken() -> float:
        raise RuntimeError("the database is away")

    add_gauge(metrics_app, "umstrack_test_broken", "Never read.", broken)
    response = mclient.get("/metrics", headers=bearer(METRICS_TOKEN))
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "umstrack_test_broken" not in text
    assert "umstrack_http_requests_total" in text


# --- several gunicorn workers: one sum ----------------------------------------------------


def test_a_scrape_sums_the_counts_of_every_gunicorn_worker(database_url, tmp_path):
    env = {
        "DATABASE_URL": database_url,
        "UMS_CHANNELS": f"{CHANNEL}:{SECRET}",
        "METRICS_TOKEN": METRICS_TOKEN,
        "WEB_CONCURRENCY": "3",
    }
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log, running_server(env, output=log) as url:
        posted = _post_until_several_workers_answer(url, log_path)
        scrapes = [
            samples(
                requests.get(f"{url}/metrics", headers=bearer(METRICS_TOKEN), timeout=(2, 10)).text
            )
            for _ in range(6)
        ]
    # Whichever worker answers, it tells the sum of all of them.
    for scraped in scrapes:
        received = total(scraped, "umstrack_callback_records_total", channelkey=CHANNEL,
                          outcome="received")  # fmt: skip
        assert received == 9 * posted
        answered = value(scraped, "umstrack_http_requests_total", route="/callbacks/ums",
                         method="POST", status="200")  # fmt: skip
        assert answered == posted


def _post_until_several_workers_answer(url: str, log_path: Path) -> int:
    """Post batches on new connections, in parallel, until the log shows that two
    workers or more took them; returns how many were posted."""
    posted = 0
    for round_ in range(20):
        threads = [
            threading.Thread(target=_post_one, args=(url, f"v:1t:{round_}p:{i}n:1"))
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        posted += len(threads)
        if len(_callback_pids(log_path)) >= 2:
            return posted
    raise AssertionError("every batch went to one worker")


def _post_one(url: str, msgid: str) -> None:
    response = requests.post(
        f"{url}/callbacks/ums", json=nine_type_batch(9, msgid=msgid), headers=basic_auth(),
        timeout=(2, 30),
    )  # fmt: skip
    assert response.status_code == 200


def _callback_pids(log_path: Path) -> set[int]:
    pids = set()
    for line in log_path.read_text().splitlines():
        if line.startswith("{") and '"/callbacks/ums"' in line:
            pids.add(json.loads(line)["pid"])
    return pids


def test_every_metric_family_is_served_before_anything_is_counted(mclient):
    text = mclient.get("/metrics", headers=bearer(METRICS_TOKEN)).get_data(as_text=True)
    names = set(re.findall(r"^# TYPE (umstrack_\w+) (\w+)$", text, re.MULTILINE))
    assert {n for n, kind in names if kind == "counter"} >= {
        "umstrack_http_requests_total",
        "umstrack_callback_records_total",
        "umstrack_database_errors_total",
        "umstrack_outbox_sends_total",
    }
    assert {n for n, kind in names if kind == "histogram"} == {
        "umstrack_http_request_duration_seconds",
        "umstrack_callback_lag_seconds",
    }
