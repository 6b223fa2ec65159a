"""How the UMS emulator delivers callbacks: URL verification first, batches of at most
100 per URL and channel, the flush interval, retries of failed batches, then drops."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from sender.emulator import Emulator
from sender.ums.client import UmsClient
from tests.emulator_helpers import APP, CHANNELS, SMS, Callbacks, auth_header, config
from tests.helpers import CHANNEL, OTHER_CHANNEL, OTHER_SECRET, SECRET


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(config()) as em:
        yield em


# --------------------------------------------------------------------------- verification


def test_callback_url_is_verified_before_it_is_called(emulator: Emulator) -> None:
    message = {"aud_userid": ["u1", "u2"], "msg_app": APP}
    with (
        Callbacks(echo=False) as bad,
        Callbacks() as good,
        UmsClient(CHANNEL, SECRET, emulator.url) as ums,
    ):
        refused = ums.send(message, callback_url=bad.url).msgid
        assert emulator.wait_idle(10)
        first = ums.send(message, callback_url=good.url).msgid
        assert emulator.wait_idle(10)
        second = ums.send(message, callback_url=good.url).msgid
        assert emulator.wait_idle(10)

    # The failing URL was asked once, with the channel's auth, and never posted to.
    assert len(bad.gets) == 1 and bad.posts == []
    _, authorization, query = bad.gets[0]
    assert authorization == auth_header() and len(query["echostr"][0]) >= 16
    # The good URL was verified once, before its first POST, then used for both messages.
    assert len(good.gets) == 1
    assert good.gets[0][0] < min(post.at for post in good.posts)
    assert {r["msgid"] for r in good.records()} == {first, second}

    state = emulator.state()
    verification = {e["url"]: e["verification"] for e in state["callbacks"]}
    assert verification[good.url] == {"state": "verified", "attempts": 1, "error": None}
    assert verification[bad.url]["state"] == "failed"
    assert "instead of the echostr" in verification[bad.url]["error"]
    lost = state["messages"][refused]
    assert lost["dropped"] == lost["generated"] and sum(lost["delivered"].values()) == 0
    assert state["batches"]["dropped_unverified"] >= 1


# --------------------------------------------------------------------------- batches, retries


def test_batches_are_bare_arrays_of_at_most_100_per_url_and_channel() -> None:
    no_failures = {"invalid_share": 0, "submit_fail_share": 0, "delivery_fail_share": 0}
    with (
        Callbacks() as cb,
        Emulator(config(click_share=0, **no_failures)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
        UmsClient(OTHER_CHANNEL, OTHER_SECRET, em.url, callback_url=cb.url) as other,
    ):
        big = ums.send({"aud_userid": [f"user{i}" for i in range(250)], "msg_sms": SMS}).msgid
        small = other.send({"aud_sms": [{"data": ["13800000000"]}], "msg_sms": SMS}).msgid
        assert em.wait_idle(10)

    assert {len(post.body) for post in cb.posts} <= set(range(1, 101))
    assert sum(len(post.body) == 100 for post in cb.posts) == 7  # 750 records of one channel
    for post in cb.posts:
        assert isinstance(post.body, list)
        assert (post.content_type or "").startswith("application/json")
        channel = {record["channelkey"] for record in post.body}
        assert len(channel) == 1  # one batch per (URL, channel), with that channel's auth
        key = channel.pop()
        assert post.authorization == auth_header(key, CHANNELS[key])
    records = cb.records()
    assert len(records) == len({json.dumps(r, sort_keys=True) for r in records}) == 753
    # Custom channel ids: userid "", sender_id the id, validation by UMS itself (sender 0).
    assert [
        (r["type"], r["userid"], r["sender_id"], r["sender"])
        for r in records
        if r["msgid"] == small
    ] == [(0, "", "13800000000", 0), (2, "", "13800000000", 5), (4, "", "13800000000", 5)]
    assert sum(r["msgid"] == big for r in records) == 750


def test_fewer_than_a_batch_wait_for_the_flush_interval() -> None:
    with (
        Callbacks() as cb,
        Emulator(config(flush_interval=0.6)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
    ):
        started = time.monotonic()
        ums.send({"aud_userid": ["u1"], "msg_sms": SMS})
        assert em.wait_idle(10)
    assert len(cb.posts) == 1
    assert cb.posts[0].at - started >= 0.55


def test_failed_batches_are_retried_then_dropped() -> None:
    settings = config(retry_interval=0.25, max_retries=3)
    with (
        Callbacks(statuses=[503, 500]) as flaky,
        Callbacks(default=500) as broken,
        Emulator(settings) as em,
        UmsClient(CHANNEL, SECRET, em.url) as ums,
    ):
        saved = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}, callback_url=flaky.url)
        assert em.wait_idle(10)
        lost = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}, callback_url=broken.url)
        assert em.wait_idle(10)

    # Two failures, then the same batch again and acknowledged.
    assert len(flaky.posts) == 3 and flaky.posts[0].body == flaky.posts[2].body
    # One attempt and three retries, retry_interval apart, then dropped.
    times = [post.at for post in broken.posts]
    assert len(times) == 4
    assert all(b - a >= 0.2 for a, b in zip(times, times[1:], strict=False))
    state = em.state()
    by_url = {e["url"]: e for e in state["callbacks"]}
    assert by_url[flaky.url]["batches"] == {
        "attempted": 3,
        "acknowledged": 1,
        "failed": 2,
        "dropped": 0,
        "dropped_unverified": 0,
    }
    assert by_url[flaky.url]["answers"] == {"503": 1, "500": 1, "200": 1}
    assert by_url[broken.url]["batches"]["dropped"] == 1
    assert by_url[broken.url]["last_answer"]["status"] == 500
    messages = state["messages"]
    assert messages[saved.msgid]["delivered"] == messages[saved.msgid]["generated"]
    assert messages[lost.msgid]["dropped"] == messages[lost.msgid]["generated"]
    assert sum(messages[lost.msgid]["delivered"].values()) == 0
