"""Sending through UMS: validated, split, recorded, over real HTTP to a fake UMS."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from receiver import create_app
from receiver.sending.outcome import SendFailedError, UmsOutcome
from receiver.sending.request import parse_request
from receiver.sending.ums import UmsSender
from sender.errors import InvalidMessageError, UnknownOutcomeError
from sender.http import RetryPolicy
from tests.cli import invoke
from tests.fake_ums import FakeUms, Reply
from tests.helpers import CHANNEL, SECRET, api_get, basic_auth, bearer, post, record, walk
from tests.test_openapi import _check, _closed, _served
from tests.ums_cases import INVALID

PUBLIC_URL = "https://umstrack.example.com"
CALLBACK_URL = f"{PUBLIC_URL}/callbacks/ums"
SMS = {"temp_id": 1, "temp_para": {"code": "1234"}}


def _message(**extra: Any) -> dict[str, Any]:
    return {
        "aud_userid": ["user1", "user2"],
        "msg_sms": [SMS],
        "option": {"sendno": "s-1"},
        "callback": {"params": {"order_id": "7"}},
        **extra,
    }


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as fake:
        yield fake


@pytest.fixture
def send_env(env, fake) -> dict[str, str]:
    return {**env, "UMS_API_BASE": fake.url, "PUBLIC_URL": PUBLIC_URL}


@pytest.fixture
def app(send_env):
    app = create_app(send_env)
    yield app
    app.extensions["umstrack.engine"].dispose()


def _send(client, body: Any) -> Any:
    return client.post("/api/messages", json=body, headers=bearer())


def test_send_posts_the_message_with_callback_and_records_it(client, fake):
    response = _send(client, _message())

    assert response.status_code == 201, response.json
    answer = response.json
    send_id = answer["send_id"]
    [msgid] = answer["msgids"]
    assert answer["messages"] == [{"msgid": msgid, "url": f"http://localhost/api/messages/{msgid}"}]
    assert answer["parts"] == [
        {
            "part": 0,
            "msgid": msgid,
            "sendno": "s-1",
            "recipients": 2,
            "code": 0,
            "message": "success",
            "recorded_as": msgid,
            "recorded": True,
        },
    ]
    [sent] = fake.requests
    assert sent.requestline == "POST /v1/sent HTTP/1.1"
    assert sent.headers["Authorization"] == basic_auth(CHANNEL, SECRET)["Authorization"]
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json == {
        "aud_userid": ["user1", "user2"],
        "msg_sms": [SMS],
        "option": {"sendno": "s-1"},
        "callback": {"params": {"order_id": "7", "umstrack_send": send_id}, "url": CALLBACK_URL},
    }

    summary = api_get(client, answer["messages"][0]["url"].removeprefix("http://localhost")).json
    assert summary["provider"] == "ums" and summary["channelkey"] == CHANNEL
    assert summary["sendno"] == "s-1" and summary["send"] == {
        "outcome": "sent",
        "code": 0,
        "message": "success",
    }
    assert summary["send_id"] == send_id and summary["part"] == 0
    assert summary["params"] == {"order_id": "7", "umstrack_send": send_id}
    assert summary["sent_at"] is not None


@pytest.mark.parametrize(
    ("flags", "message", "path"),
    [
        ({"broadcast": True}, {"msg_sms": [SMS]}, "/v1/broadcast"),
        ({"template": True}, {"aud_userid": ["u1"], "template_id": 7}, "/v1/template/sent"),
        ({"template": True, "broadcast": True}, {"template_id": 7}, "/v1/template/broadcast"),
    ],
)
def test_each_kind_goes_to_its_endpoint(client, fake, flags, message, path):
    response = _send(client, {**message, **flags})
    assert response.status_code == 201, response.json
    assert fake.paths() == [path]
    assert not set(flags) & set(fake.requests[0].json)  # our keys are not UMS's


def test_callbacks_that_came_first_and_the_send_meet_in_one_message(client, fake):
    msgid = "v:1t:1700000000p:1n:1"
    assert post(client, [record(4, msgid=msgid)]).json["stored"] == 1
    fake.queue(Reply(json={"code": 0, "message": "success", "msgid": msgid, "sendno": "s-1"}))

    answer = _send(client, _message()).json

    summary = api_get(client, f"/api/messages/{msgid}").json
    assert summary["counts"]["delivered"] == 1  # the callback
    assert summary["send"] == {"outcome": "sent", "code": 0, "message": "success"}  # and the send
    assert summary["send_id"] == answer["send_id"] and summary["sendno"] == "s-1"
    assert summary["created_at"] < summary["sent_at"]  # known since the callback


def test_callbacks_link_to_their_send_whoever_sent_them(client):
    # Another service used our tracking param: its callbacks still name the send.
    post(client, [record(4, msgid="m-other", params={"umstrack_send": "abc"})])
    assert [m["msgid"] for m in walk(client, "/api/messages", "messages", send_id="abc")] == [
        "m-other"
    ]


def test_2500_userids_go_in_three_requests_recorded_as_one_send(client, fake):
    users = [f"u{i:04d}" for i in range(2500)]
    response = _send(client, _message(aud_userid=users))

    assert response.status_code == 201, response.json
    answer = response.json
    assert len(answer["msgids"]) == 3 == len(set(answer["msgids"]))
    assert [len(r.json["aud_userid"]) for r in fake.requests] == [1000, 1000, 500]
    assert [u for r in fake.requests for u in r.json["aud_userid"]] == users
    assert {r.json["callback"]["params"]["umstrack_send"] for r in fake.requests} == {
        answer["send_id"]
    }
    parts = walk(client, "/api/messages", "messages", send_id=answer["send_id"])
    assert sorted((m["part"], m["msgid"]) for m in parts) == list(enumerate(answer["msgids"]))


def test_personalised_send_groups_identical_contents(client, fake):
    template = {
        "msg_sms": [{"temp_id": 1, "temp_para": {"name": "{name}", "points": "{points}"}}],
        "option": {"sendno": "points"},
    }
    recipients = [
        {"to": {"aud_userid": "tom"}, "values": {"name": "Tom", "points": 2}},
        {"to": {"aud_userid": "jerry"}, "values": {"name": "Jerry", "points": 5}},
        {"to": {"aud_userid": "tom2"}, "values": {"name": "Tom", "points": 2}},
    ]
    response = _send(client, {**template, "recipients": recipients})

    assert response.status_code == 201, response.json
    assert [(r.json["aud_userid"], r.json["msg_sms"][0]["temp_para"]) for r in fake.requests] == [
        (["tom", "tom2"], {"name": "Tom", "points": "2"}),
        (["jerry"], {"name": "Jerry", "points": "5"}),
    ]
    assert len(walk(client, "/api/messages", "messages", send_id=response.json["send_id"])) == 2


def test_personalised_placeholder_without_value_sends_nothing(client, fake):
    template = {"msg_sms": [{"temp_id": 1, "temp_para": {"name": "{name}"}}]}
    recipients = [
        {"to": {"aud_userid": "tom"}, "values": {"name": "Tom"}},
        {"to": {"aud_userid": "jerry"}, "values": {}},
    ]
    response = _send(client, {**template, "recipients": recipients})
    assert response.status_code == 400
    assert response.json["field"] == "recipients[1].values.name"
    assert fake.requests == []


def test_every_validation_rule_refuses_before_sending(engine, fake):
    # Each of the rule module's failing cases, through the real send path. Cases
    # about the 1000-ids-per-request limit are not failures here: the sender splits.
    sender = UmsSender(engine=engine, channels={CHANNEL: SECRET}, api_base=fake.url)
    tried = 0
    for param in INVALID:
        kind, message, field, code = param.values
        if code == 1015004 or "1001" in param.id:
            continue
        flags = {"broadcast": "broadcast" in kind, "template": kind.startswith("template")}
        with pytest.raises(InvalidMessageError) as caught:
            sender.send(parse_request(message, **flags))
        assert (caught.value.field, caught.value.code) == (field, code), param.id
        tried += 1
    assert tried > 100
    assert fake.requests == []


def test_invalid_message_over_http_is_400_naming_the_field(client, fake, engine):
    response = _send(client, _message(option={"priority": 4}))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_message"
    assert response.json["field"] == "option.priority"
    assert response.json["message"].startswith("option.priority: ")
    assert fake.requests == []
    assert walk(client, "/api/messages", "messages") == []  # nothing recorded


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not json", "bad_request"),
        (b"[1, 2]", "invalid_message"),
        (b'{"broadcast": "yes", "msg_sms": []}', "invalid_message"),
        (
            b'{"channelkey": "nope", "aud_userid": ["u"], "msg_sms": [{"content": "x"}]}',
            "invalid_message",
        ),
    ],
)
def test_bad_send_bodies_are_400(client, fake, body, error):
    response = client.post(
        "/api/messages", data=body, content_type="application/json", headers=bearer()
    )
    assert response.status_code == 400 and response.json["error"] == error
    assert fake.requests == []


def test_sending_needs_a_token(client, fake):
    response = client.post("/api/messages", json=_message())
    assert response.status_code == 401 and fake.requests == []


def test_no_channel_configured_is_503(send_env, fake):
    app = create_app({**send_env, "UMS_CHANNELS": ""})
    try:
        response = _send(app.test_client(), _message())
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert response.status_code == 503 and response.json["error"] == "not_configured"


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply(400, {"code": 1015005, "message": "渠道已关闭"}), 1015005),
        (Reply(401, {"code": 4005, "message": "auth failed"}), 4005),
        (Reply(400, {"code": 1015031, "message": "template_id does not exist"}), 1015031),
        (Reply(502, body=b"<html>bad gateway</html>", content_type="text/html"), None),
    ],
    ids=["channel-closed", "auth", "template", "no-envelope"],
)
def test_ums_error_is_502_and_recorded(client, fake, reply, code):
    fake.queue(reply)
    response = _send(client, _message())

    assert response.status_code == 502
    assert response.json["error"] == "ums_error"
    assert response.json["ums"]["code"] == code
    assert response.json["ums"]["http_status"] == reply.status
    [failed] = response.json["sent"]["parts"]
    assert failed["msgid"] is None and failed["code"] == code
    summary = api_get(client, f"/api/messages/{failed['recorded_as']}").json
    assert summary["send"]["code"] == code and summary["sendno"] == "s-1"
    assert summary["send"]["message"] == response.json["ums"]["message"]


def test_failure_midway_reports_what_went_out(client, fake):
    fake.queue(Reply(), Reply(400, {"code": 1015029, "message": "broadcast quota used up"}))
    response = _send(client, _message(aud_userid=[f"u{i}" for i in range(2500)]))

    assert response.status_code == 502
    parts = response.json["sent"]["parts"]
    assert [(p["part"], p["code"]) for p in parts] == [(0, 0), (1, 1015029)]
    assert len(fake.requests) == 2  # the third part was not tried
    recorded = walk(client, "/api/messages", "messages", send_id=response.json["sent"]["send_id"])
    assert sorted((m["part"], m["send"]["outcome"]) for m in recorded) == [
        (0, "sent"),
        (1, "refused"),
        (2, "not_sent"),  # recorded before anything left, closed as never tried
    ]


def test_rate_limit_is_retried_with_backoff(engine, fake):
    sleeps: list[float] = []
    sender = UmsSender(
        engine=engine, channels={CHANNEL: SECRET}, api_base=fake.url, sleep=sleeps.append
    )
    fake.error(1015030, "rate limited")
    fake.error(1015030, "rate limited")
    outcome = sender.send(parse_request(_message()))
    assert len(outcome.msgids) == 1 and len(fake.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_read_timeout_is_not_retried_and_is_recorded_as_unknown(engine, fake, client):
    sender = UmsSender(
        engine=engine,
        channels={CHANNEL: SECRET},
        api_base=fake.url,
        timeout=(1.0, 0.3),
        retry=RetryPolicy(base_delay=0.01),
    )
    fake.queue(Reply(delay=2.0))
    with pytest.raises(SendFailedError) as caught:
        sender.send(parse_request(_message()))

    assert isinstance(caught.value.error, UnknownOutcomeError)
    assert caught.value.error.sendno == "s-1"
    assert len(fake.requests) == 1
    [part] = caught.value.outcome.parts
    summary = api_get(client, f"/api/messages/{part.recorded_as}").json
    assert summary["send"]["code"] is None
    assert summary["send"]["message"].startswith("outcome unknown")


# --- the command line ------------------------------------------------------


def _cli(send_env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    return invoke("send", *args, env=send_env, stdin=stdin)


def test_cli_sends_and_prints_the_msgids(send_env, fake, tmp_path, client):
    path = tmp_path / "message.json"
    path.write_text(json.dumps(_message(aud_userid=[f"u{i}" for i in range(1500)])))

    result = _cli(send_env, str(path))

    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert len(printed["msgids"]) == 2 and len(fake.requests) == 2
    for msgid in printed["msgids"]:
        assert api_get(client, f"/api/messages/{msgid}").json["send_id"] == printed["send_id"]


def test_cli_flags_choose_the_kind_and_channel(send_env, fake):
    result = _cli(
        send_env, "--broadcast", "--channel", CHANNEL, "-", stdin='{"msg_sms": [{"content": "x"}]}'
    )
    assert result.exit_code == 0, result.stderr
    assert fake.paths() == ["/v1/broadcast"]


def test_cli_dry_run_validates_and_sends_nothing(send_env, fake, tmp_path):
    path = tmp_path / "message.json"
    path.write_text(json.dumps(_message()))
    result = _cli(send_env, "--dry-run", str(path))
    assert result.exit_code == 0, result.stderr
    [part] = json.loads(result.stdout)["parts"]
    assert part["body"]["callback"]["url"] == CALLBACK_URL and part["msgid"] is None
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [
        (["-"], '{"aud_userid": ["u 1"], "msg_sms": [{"content": "x"}]}', "aud_userid[0]"),
        (["--dry-run", "-"], '{"aud_userid": ["u1"]}', "msg_"),
        (["-"], "{not json", "cannot read"),
        (["--channel", "unknown", "-"], '{"msg_sms": [{"content": "x"}]}', "channelkey"),
    ],
)
def test_cli_refuses_invalid_input_with_the_reason(send_env, fake, args, stdin, reason):
    result = _cli(send_env, *args, stdin=stdin)
    assert result.exit_code == 2
    assert reason in result.stderr and result.stdout == ""
    assert fake.requests == []


def test_cli_reports_a_ums_error(send_env, fake, tmp_path):
    fake.error(1015005, "渠道已关闭")
    result = _cli(send_env, "-", stdin=json.dumps(_message()))
    assert result.exit_code == 1
    assert "1015005" in result.stderr and "渠道已关闭" in result.stderr
    assert json.loads(result.stdout)["parts"][0]["code"] == 1015005


def test_send_answers_match_the_openapi_document(client, fake):
    doc = _closed(_served(client))
    answers = [_send(client, _message()), _send(client, _message(option={"priority": 9}))]
    fake.error(1015005, "渠道已关闭")
    answers.append(_send(client, _message()))
    assert [a.status_code for a in answers] == [201, 400, 502]
    for answer in answers:
        _check(doc, answer, "/api/messages", "post")


def test_the_outcome_model_shapes_every_answer_and_gives_their_schema(client, fake, send_env):
    answers = [_send(client, _message()).json]
    fake.error(1015029, "broadcast quota used up")
    answers.append(_send(client, _message(aud_userid=["u1"])).json["sent"])
    for args in (["-"], ["--dry-run", "-"]):
        result = _cli(send_env, *args, stdin=json.dumps(_message()))
        assert result.exit_code == 0, result.stderr
        answers.append(json.loads(result.stdout))

    schema = _closed(UmsOutcome.model_json_schema(mode="serialization"))
    for answer in answers:
        Draft202012Validator(schema).validate(answer)
    assert "messages" in answers[0] and "messages" not in answers[1]
    assert "body" in answers[3]["parts"][0] and "body" not in answers[2]["parts"][0]
    # The served document's schemas are the model's own.
    served = _served(client)["components"]["schemas"]
    model = UmsOutcome.model_json_schema(
        mode="serialization", ref_template="#/components/schemas/{model}"
    )
    part = model.pop("$defs")["UmsPart"]
    for ours, theirs in ((model, served["UmsOutcome"]), (part, served["UmsPart"])):
        assert ours == theirs
