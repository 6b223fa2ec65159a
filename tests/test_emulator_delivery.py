"""How the UMS emulator delivers callbacks: a URL check before a URL is first called (a
failed check is a failed attempt, retried), batches of at most 100 per URL and channel,
the flush interval, retries of failed batches, then drops."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from receiver.local import free_port
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

    # The failing URL was asked before each attempt (one and three retries), with the
    # channel's auth, and never posted to.
    assert len(bad.gets) == 4 and bad.posts == []
    for _, authorization, query in bad.gets:
        assert authorization == auth_header() and len(query["echostr"][0]) >= 16
    assert len({query["echostr"][0] for _, _, query in bad.gets}) == 4  # a new one each time
    # The good URL was verified once, before its first POST, then used for both messages.
    assert len(good.gets) == 1
    assert good.gets[0][0] < min(post.at for post in good.posts)
    assert {r["msgid"] for r in good.records()} == {first, second}

    state = emulator.state()
    by_url = {e["url"]: e for e in state["callbacks"]}
    assert by_url[good.url]["verification"] == {"state": "verified", "attempts": 1, "error": None}
    assert by_url[good.url]["last_drop"] is None
    bad_url = by_url[bad.url]
    assert bad_url["verification"]["state"] == "failed"
    assert bad_url["verification"]["attempts"] == 4
    assert "instead of the echostr" in bad_url["verification"]["error"]
    assert bad_url["batches"] == {
        "attempted": 4,
        "acknowledged": 0,
        "failed": 4,
        "failed_unverified": 4,
        "dropped": 1,
        "dropped_unverified": 1,
    }
    assert bad_url["answers"] == {}  # nothing was posted
    reason = bad_url["last_drop"]["reason"]
    assert reason.startswith("4 attempt(s) failed, the last: callback URL check failed: ")
    assert "instead of the echostr" in reason
    lost = state["messages"][refused]
    assert lost["dropped"] == lost["generated"] and sum(lost["delivered"].values()) == 0
    assert state["batches"]["dropped_unverified"] == 1


def test_a_failed_url_check_is_a_failed_attempt_retried_like_a_post() -> None:
    # Two failed checks, then a check that passes and a POST answered 503, then a 200:
    # four attempts, the last UMS allows (one and three retries).
    with (
        Callbacks(echoes=[False, False], statuses=[503]) as cb,
        Emulator(config(retry_interval=0.1, max_retries=3)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=cb.url) as ums,
    ):
        msgid = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}).msgid
        assert em.wait_idle(10)
        later = ums.send({"aud_userid": ["u3"], "msg_sms": SMS}).msgid
        assert em.wait_idle(10)

    assert len(cb.gets) == 3  # checked before each attempt until it passed, then never
    assert cb.gets[2][0] < cb.posts[0].at
    assert len(cb.posts) == 3 and cb.posts[0].body == cb.posts[1].body
    [endpoint] = em.state()["callbacks"]
    assert endpoint["verification"] == {"state": "verified", "attempts": 3, "error": None}
    assert endpoint["batches"] == {
        "attempted": 5,
        "acknowledged": 2,
        "failed": 3,
        "failed_unverified": 2,
        "dropped": 0,
        "dropped_unverified": 0,
    }
    assert endpoint["answers"] == {"503": 1, "200": 2}
    messages = em.state()["messages"]
    for sent in (msgid, later):
        assert messages[sent]["delivered"] == messages[sent]["generated"]


def test_a_receiver_that_starts_late_gets_every_callback() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/callbacks/ums"
    # Retries enough for a minute: the test waits for the events, not for a time.
    with (
        Emulator(config(retry_interval=0.1, max_retries=600)) as em,
        UmsClient(CHANNEL, SECRET, em.url, callback_url=url) as ums,
    ):
        msgid = ums.send({"aud_userid": ["u1", "u2"], "msg_sms": SMS}).msgid
        deadline = time.monotonic() + 10
        while em.state()["batches"]["failed_unverified"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        [endpoint] = em.state()["callbacks"]
        assert endpoint["verification"]["state"] == "failed", endpoint  # nothing listens yet
        assert "ConnectionError" in endpoint["verification"]["error"]
        assert em.state()["messages"][msgid]["pending"] > 0  # not dropped
        with Callbacks(port=port) as cb:
            assert em.wait_idle(30), em.pending()

    assert cb.gets and cb.gets[0][0] < min(post.at for post in cb.posts)
    state = em.state()
    [endpoint] = state["callbacks"]
    assert endpoint["verification"]["state"] == "verified"
    batches = endpoint["batches"]
    assert batches["failed"] == batches["failed_unverified"] >= 2
    assert batches["acknowledged"] == 1 and batches["dropped"] == 0
    assert batches["attempted"] == batches["failed"] + 1
    message = state["messages"][msgid]
    assert message["delivered"] == message["generated"] and message["pending"] == 0
    assert len(cb.records()) == sum(message["generated"].values())


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
        "failed_unverified": 0,
        "dropped": 0,
        "dropped_unverified": 0,
    }
    assert by_url[flaky.url]["answers"] == {"503": 1, "500": 1, "200": 1}
    assert by_url[broken.url]["batches"]["dropped"] == 1
    assert by_url[broken.url]["batches"]["dropped_unverified"] == 0
    assert by_url[broken.url]["last_answer"]["status"] == 500
    assert by_url[broken.url]["last_drop"]["reason"].startswith(
        "4 attempt(s) failed, the last: HTTP 500"
    )
    messages = state["messages"]
    assert messages[saved.msgid]["delivered"] == messages[saved.msgid]["generated"]
    assert messages[lost.msgid]["dropped"] == messages[lost.msgid]["generated"]
    assert sum(messages[lost.msgid]["delivered"].values()) == 0
