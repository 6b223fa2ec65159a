"""``Idempotency-Key`` on ``POST /api/messages``: the same key and body get the first
answer again and never send again; another body is a 409; racing requests send once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from receiver import create_app
from tests.fake_ums import FakeUms, Reply
from tests.helpers import CHANNEL, SECRET, bearer

MESSAGE_BODY = {
    "aud_userid": ["user1", "user2"],
    "msg_sms": [{"temp_id": 1, "temp_para": {"code": "1234"}}],
    "option": {"sendno": "order-7"},
}


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as fake:
        yield fake


@pytest.fixture
def app(env, fake):
    app = create_app({**env, "UMS_API_BASE": fake.url})
    yield app
    app.extensions["umstrack.engine"].dispose()


def _send(client: Any, body: Any, key: str | None) -> Any:
    headers = bearer() if key is None else {**bearer(), "Idempotency-Key": key}
    return client.post("/api/messages", json=body, headers=headers)


def test_the_same_key_and_body_get_the_first_answer_and_send_once(client, fake):
    first = _send(client, MESSAGE_BODY, "order-7")
    # The same JSON with its keys in another order is the same body.
    again = _send(client, dict(reversed(MESSAGE_BODY.items())), "order-7")

    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(fake.requests) == 1


def test_the_same_key_with_another_body_is_409_and_sends_nothing(client, fake):
    assert _send(client, MESSAGE_BODY, "order-7").status_code == 201
    other = {**MESSAGE_BODY, "aud_userid": ["user3"]}

    response = _send(client, other, "order-7")

    assert response.status_code == 409
    assert response.json["error"] == "idempotency_key_reused"
    assert len(fake.requests) == 1


def test_without_a_key_every_request_sends(client, fake):
    assert _send(client, MESSAGE_BODY, None).status_code == 201
    assert _send(client, MESSAGE_BODY, None).status_code == 201
    assert len(fake.requests) == 2


def test_a_refused_send_is_answered_again_without_sending(client, fake):
    fake.error(1015029, "broadcast quota used up")
    first = _send(client, MESSAGE_BODY, "k-refused")
    again = _send(client, MESSAGE_BODY, "k-refused")

    assert first.status_code == again.status_code == 502
    assert again.json == first.json and again.json["ums"]["code"] == 1015029
    assert len(fake.requests) == 1


def test_an_invalid_message_claims_no_key(client, fake):
    broken = {**MESSAGE_BODY, "msg_sms": [{"temp_id": 0}]}
    refused = _send(client, broken, "k-fixed")
    assert refused.status_code == 400 and refused.json["error"] == "invalid_message"

    # The corrected request with the same key is a new request, not a conflict.
    response = _send(client, MESSAGE_BODY, "k-fixed")
    assert response.status_code == 201
    assert len(fake.requests) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "clé", "a\tb"])
def test_a_bad_key_is_400_and_sends_nothing(client, fake, key):
    response = _send(client, MESSAGE_BODY, key)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_parameter"
    assert "Idempotency-Key" in response.json["message"]
    assert fake.requests == []


def test_racing_requests_with_one_key_send_once(app, fake):
    fake.queue(Reply(delay=0.5))  # UMS is slow: every racer arrives while it is in flight
    racers = 6
    start = threading.Barrier(racers)
    answers: list[Any] = [None] * racers

    def race(n: int) -> None:
        client = app.test_client()
        start.wait()
        answers[n] = _send(client, MESSAGE_BODY, "race")

    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(fake.requests) == 1
    assert [a.status_code for a in answers] == [201] * racers
    assert all(a.json == answers[0].json for a in answers)
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == racers - 1
