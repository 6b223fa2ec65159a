"""The RongCloud client over real HTTP to a fake RongCloud on loopback that checks
signatures: signed requests, the rate limit, failover to the backup domain, and what
RongCloud's answers mean."""

from __future__ import annotations

import hashlib
import threading

import pytest

from sender.errors import NotSentError, ProviderRefusedError, UnknownOutcomeError
from sender.http import RetryPolicy
from sender.rongcloud import RateLimiter, limiter_for, signature
from tests.fake_rongcloud import Reply, rongcloud_error
from tests.rongcloud.support import (
    APP_KEY,
    APP_SECRET,
    DOC_EXAMPLE,
    T0,
    client_for,
    closed_port,
    many,
)

# --- signing and the request ------------------------------------------------------


def test_signature_is_sha1_hex_of_secret_nonce_timestamp() -> None:
    independent = hashlib.sha1((APP_SECRET + "nonce0123456789" + "1700000000").encode()).hexdigest()
    assert signature(APP_SECRET, "nonce0123456789", "1700000000") == independent
    assert independent == "3e77950b5963fa5af98f9eab9f059a9706ee1aa5"  # sha1sum, by hand


def test_request_is_signed_json_to_publish_template(fake, clock) -> None:
    with client_for(fake.url, clock, nonce=lambda: "nonce0123456789") as client:
        clock.now = 1_700_000_000.75  # sent as whole seconds, as RongCloud's SDKs do
        result = client.publish_template(DOC_EXAMPLE)

    [sent] = fake.requests
    assert (sent.method, sent.path) == ("POST", "/message/private/publish_template.json")
    assert sent.headers["App-Key"] == APP_KEY
    assert sent.headers["Nonce"] == "nonce0123456789"
    assert sent.headers["Timestamp"] == "1700000000"
    assert sent.headers["Signature"] == "3e77950b5963fa5af98f9eab9f059a9706ee1aa5"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Request-Id"] == result.request_id
    assert "Authorization" not in sent.headers
    assert sent.signed
    assert sent.json == DOC_EXAMPLE  # the body, exactly: content stays a string with placeholders
    assert isinstance(sent.json["content"], str)
    assert result.code == 200 and result.base_url == fake.url
    assert [u["userId"] for u in result.message_uids] == ["21", "22", "23"]


def test_every_attempt_has_its_own_nonce(fake, clock) -> None:
    fake.error(1008, "rate limited", 429)
    with client_for(fake.url, clock) as client:
        client.publish_template(DOC_EXAMPLE)
    nonces = [r.headers["Nonce"] for r in fake.requests]
    assert len(nonces) == 2 and len(set(nonces)) == 2
    assert all(len(n) <= 18 for n in nonces)  # the 2021 docs' limit


# --- the rate limit ----------------------------------------------------------------


def test_12000_recipients_are_held_to_6000_a_minute(sender, fake, clock) -> None:
    shown: list[str] = []
    outcome = sender.send(many(12_000), progress=shown.append)

    assert len(fake.requests) == 12 and all(r.signed for r in fake.requests)
    assert clock.sleeps == [60.0]  # one wait, just long enough
    assert clock.now - clock.start == 60.0
    # When each request went out, by the Timestamp it was signed with (simulated time).
    sent = [(int(r.headers["Timestamp"]), len(r.json["toUserId"])) for r in fake.requests]
    assert [t - int(T0) for t, _ in sent] == [0] * 6 + [60] * 6
    for start, _ in sent:
        in_window = sum(n for t, n in sent if start <= t < start + 60)
        assert in_window <= 6000
    assert sum(n for _, n in sent) == 12_000
    assert "part 7/12: waiting 60.0 s for RongCloud's rate limit" in shown
    assert shown[-1] == "part 12/12: submitted"
    assert outcome.model_dump(mode="json")["submitted"] == 12_000


def test_the_wait_is_logged(fake, clock, caplog) -> None:
    limiter = RateLimiter(limit=3, period=60, clock=clock, sleep=clock.sleep)
    with (
        client_for(fake.url, clock, limiter=limiter) as client,
        caplog.at_level("INFO", logger="sender.rongcloud"),
    ):
        client.publish_template(DOC_EXAMPLE)
        client.publish_template(DOC_EXAMPLE)
    assert clock.sleeps == [60.0]
    assert any("waiting 60.0 s to send to 3" in r.getMessage() for r in caplog.records)


def test_limiter_is_shared_by_threads_and_keeps_every_window() -> None:
    now = [T0]  # time stands still: only the reservations matter here
    limiter = RateLimiter(limit=6000, period=60, clock=lambda: now[0], sleep=lambda _s: None)
    taken: list[tuple[float, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            start = limiter.acquire(1000)
            with lock:
                taken.append((start, 1000))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(taken) == 24
    assert sorted({t - T0 for t, _ in taken}) == [0.0, 60.0, 120.0, 180.0]
    for start, _ in taken:
        assert sum(n for t, n in taken if start <= t < start + 60) <= 6000


def test_one_limiter_per_app_for_the_whole_process() -> None:
    seen: list[RateLimiter] = []
    thread = threading.Thread(target=lambda: seen.append(limiter_for("app-shared-test")))
    thread.start()
    thread.join()
    assert seen == [limiter_for("app-shared-test")]
    assert limiter_for("app-shared-test") is not limiter_for("another-app")
    assert (seen[0].limit, seen[0].period) == (6000, 60.0)


def test_limiter_refuses_what_can_never_fit() -> None:
    with pytest.raises(ValueError):
        RateLimiter(limit=10).acquire(11)


# --- failover ----------------------------------------------------------------------


def test_fails_over_to_the_backup_when_the_primary_refuses_connections(backup, clock) -> None:
    primary = f"http://127.0.0.1:{closed_port()}"
    with client_for(primary, clock, backup_base_url=backup.url) as client:
        result = client.publish_template(DOC_EXAMPLE)
    assert result.base_url == backup.url
    assert len(backup.requests) == 1 and backup.requests[0].json == DOC_EXAMPLE


def test_fails_over_to_the_backup_when_the_primary_answers_503(fake, backup, clock) -> None:
    fake.queue(rongcloud_error(1000, "internal error", 503))
    with client_for(fake.url, clock, backup_base_url=backup.url) as client:
        result = client.publish_template(DOC_EXAMPLE)
    assert result.base_url == backup.url
    assert len(fake.requests) == 1 and len(backup.requests) == 1
    assert backup.requests[0].signed


def test_backup_is_tried_once_only(fake, backup, clock) -> None:
    fake.queue(rongcloud_error(1000, "internal error", 503))
    backup.queue(rongcloud_error(1000, "internal error", 500))
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert (caught.value.code, caught.value.http_status) == (1000, 500)
    assert caught.value.base_url == backup.url
    assert len(fake.requests) == len(backup.requests) == 1


@pytest.mark.parametrize(("code", "status"), [(1002, 400), (1004, 401), (1009, 430), (1002, 200)])
def test_no_failover_on_a_4xx_or_business_error(fake, backup, clock, code, status) -> None:
    fake.error(code, "refused", status)
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert (caught.value.code, caught.value.message) == (code, "refused")
    assert caught.value.http_status == status
    assert len(fake.requests) == 1 and backup.requests == []


def test_nothing_listening_anywhere_is_never_sent(clock) -> None:
    primary = f"http://127.0.0.1:{closed_port()}"
    other = f"http://127.0.0.1:{closed_port()}"
    with (
        client_for(primary, clock, backup_base_url=other) as client,
        pytest.raises(NotSentError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert caught.value.tried == [primary, other]


def test_no_answer_after_sending_is_an_unknown_outcome_never_resent(fake, backup, clock) -> None:
    fake.queue(Reply(drop=True))  # the request arrived; the answer never came
    with (
        client_for(fake.url, clock, backup_base_url=backup.url) as client,
        pytest.raises(UnknownOutcomeError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert caught.value.base_url == fake.url
    assert len(fake.requests) == 1 and backup.requests == []  # it may have gone out


# --- RongCloud's answers -----------------------------------------------------------


def test_rate_limited_1008_is_retried_with_backoff_then_succeeds(fake, clock) -> None:
    fake.error(1008, "too many requests", 429)
    fake.error(1008, "too many requests", 429)
    with client_for(fake.url, clock) as client:
        result = client.publish_template(DOC_EXAMPLE)
    assert result.code == 200
    assert len(fake.requests) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_1008_retries_are_bounded(fake, clock) -> None:
    for _ in range(4):
        fake.error(1008, "too many requests", 429)
    retry = RetryPolicy(max_rate_limit_retries=2)
    with (
        client_for(fake.url, clock, retry=retry) as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert caught.value.code == 1008 and len(fake.requests) == 3
    assert clock.sleeps == [1.0, 2.0]


def test_a_wrong_secret_is_refused_with_1004(fake, clock) -> None:
    with (
        client_for(fake.url, clock, app_secret="not-the-secret") as client,
        pytest.raises(ProviderRefusedError) as caught,
    ):
        client.publish_template(DOC_EXAMPLE)
    assert (caught.value.code, caught.value.http_status) == (1004, 401)
    assert "signature" in caught.value.message
    assert not fake.requests[0].signed


def test_an_answer_without_an_envelope_is_an_error(fake, clock) -> None:
    fake.queue(Reply(status=200, body=b"<html>ok</html>", content_type="text/html"))
    with client_for(fake.url, clock) as client, pytest.raises(ProviderRefusedError) as caught:
        client.publish_template(DOC_EXAMPLE)
    assert caught.value.code is None and "without a JSON envelope" in caught.value.message
