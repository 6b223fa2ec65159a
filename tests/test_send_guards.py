"""What is refused before a send leaves: values the database cannot store, and a
callback URL other than this service's; and what a dry run needs (no credentials)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from receiver import create_app
from tests.cli import invoke
from tests.fake_ums import FakeUms
from tests.helpers import CHANNEL, SECRET, bearer

PUBLIC_URL = "https://umstrack.example.com"
CALLBACK_URL = f"{PUBLIC_URL}/callbacks/ums"
SMS = {"temp_id": 1, "temp_para": {"code": "1234"}}


def _message(**extra: Any) -> dict[str, Any]:
    return {"aud_userid": ["user1"], "msg_sms": [SMS], **extra}


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as fake:
        yield fake


@pytest.fixture
def app(env, fake):
    app = create_app({**env, "UMS_API_BASE": fake.url, "PUBLIC_URL": PUBLIC_URL})
    yield app
    app.extensions["umstrack.engine"].dispose()


def _post_raw(client: Any, text: str) -> Any:
    """Post JSON text as is (escapes such as \\u0000 and \\ud800 reach the server)."""
    headers = {**bearer(), "Content-Type": "application/json"}
    return client.post("/api/messages", data=text.encode(), headers=headers)


UNSTORABLE = [
    pytest.param('"option": {"sendno": "a\\u0000b"}', "option.sendno", "NUL", id="nul-sendno"),
    pytest.param(
        '"callback": {"params": {"k": "\\ud800"}}', "callback.params.k", "surrogate", id="lone"
    ),
    pytest.param(
        '"callback": {"params": {"\\u0000k": "v"}}', "callback.params", "field name", id="nul-key"
    ),
    pytest.param('"x_extra": [1, {"deep": "\\u0000"}]', "x_extra[1].deep", "NUL", id="nested"),
]


@pytest.mark.parametrize(("extra", "field", "why"), UNSTORABLE)
def test_an_unstorable_value_is_refused_before_sending(client, fake, extra, field, why):
    text = '{"aud_userid": ["user1"], "msg_sms": [{"temp_id": 1}], ' + extra + "}"

    response = _post_raw(client, text)

    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_message"
    assert response.json["field"] == field
    assert why in response.json["message"]
    assert fake.requests == []
    listed = client.get("/api/messages", headers=bearer()).json["messages"]
    assert listed == []  # nothing recorded either


def test_the_command_line_refuses_an_unstorable_value(env, fake, tmp_path):
    path = tmp_path / "msg.json"
    path.write_text('{"aud_userid": ["u\\u0000"], "msg_sms": [{"temp_id": 1}]}')

    result = invoke("send", str(path), env={**env, "UMS_API_BASE": fake.url})

    assert result.exit_code == 2
    assert "aud_userid[0]" in result.stderr and "NUL" in result.stderr
    assert fake.requests == []


def test_a_callback_url_other_than_public_url_is_refused(client, fake):
    body = _message(callback={"url": "https://attacker.example/steal", "params": {"a": "1"}})

    response = client.post("/api/messages", json=body, headers=bearer())

    assert response.status_code == 400
    assert response.json["field"] == "callback.url"
    assert CALLBACK_URL in response.json["message"]
    assert fake.requests == []


def test_a_callback_url_that_repeats_public_url_is_sent(client, fake):
    body = _message(callback={"url": CALLBACK_URL})

    assert client.post("/api/messages", json=body, headers=bearer()).status_code == 201
    assert fake.requests[0].json["callback"]["url"] == CALLBACK_URL


def test_without_public_url_the_message_names_its_callback_url(env, fake):
    app = create_app({**env, "UMS_API_BASE": fake.url})
    try:
        body = _message(callback={"url": "https://hooks.example.com/ums"})
        response = app.test_client().post("/api/messages", json=body, headers=bearer())
    finally:
        app.extensions["umstrack.engine"].dispose()

    assert response.status_code == 201
    assert fake.requests[0].json["callback"]["url"] == "https://hooks.example.com/ums"


def test_a_dry_run_needs_no_channel_and_no_database(tmp_path):
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(_message(option={"sendno": "s-1"})))
    database = tmp_path / "never.db"
    env = {"UMS_CHANNELS": None, "DATABASE_URL": f"sqlite:///{database}", "PUBLIC_URL": PUBLIC_URL}

    result = invoke("send", "--dry-run", str(path), env=env)

    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["dry_run"] is True and printed["channelkey"] is None
    [part] = printed["parts"]
    assert part["body"]["callback"]["url"] == CALLBACK_URL
    assert part["body"]["callback"]["params"] == {"umstrack_send": printed["send_id"]}
    assert not database.exists()


def test_a_dry_run_still_checks_a_named_channel(tmp_path):
    path = tmp_path / "msg.json"
    path.write_text(json.dumps(_message()))
    env = {"UMS_CHANNELS": f"{CHANNEL}:{SECRET}", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}

    result = invoke("send", "--dry-run", "--channel", "nope", str(path), env=env)

    assert result.exit_code == 2
    assert "channelkey" in result.stderr and "'nope' is not a configured channel" in result.stderr
