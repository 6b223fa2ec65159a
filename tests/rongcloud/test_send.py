"""Sending RongCloud template private messages and tracking them: split into requests,
recorded and read like any message, failures recorded too; the JSON result and
``umstrack rongcloud-send``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select
from sqlmodel import Session

from receiver.models import Message
from receiver.sending.outcome import RongCloudOutcome, SendFailedError
from sender.errors import InvalidMessageError, ProviderRefusedError
from sender.rongcloud import preview_template
from tests.cli import invoke
from tests.helpers import api_get, walk
from tests.rongcloud.support import APP_KEY, APP_SECRET, DOC_EXAMPLE, example, many
from tests.test_openapi import _closed

# --- splitting ---------------------------------------------------------------------


def test_2500_recipients_go_in_three_requests(sender, fake, client) -> None:
    message = many(2500)
    outcome = sender.send(message)

    assert [len(r.json["toUserId"]) for r in fake.requests] == [1000, 1000, 500]
    assert [u for r in fake.requests for u in r.json["toUserId"]] == message["toUserId"]
    for request in fake.requests:  # every per-recipient array cut along with toUserId
        body = request.json
        assert len(body["values"]) == len(body["pushContent"]) == len(body["toUserId"])
        for user, values in zip(body["toUserId"], body["values"], strict=True):
            assert values["{c}"] == f"name{int(user[1:])}"
        assert body["content"] == DOC_EXAMPLE["content"] and body["fromUserId"] == "system"
    assert [p.status for p in outcome.parts] == ["submitted"] * 3
    assert len(outcome.messages) == 3
    listed = walk(client, "/api/messages", "messages", send_id=outcome.send_id)
    assert sorted(m["msgid"] for m in listed) == sorted(outcome.messages)
    assert sorted(m["counts"]["submitted"] for m in listed) == [500, 1000, 1000]


def test_an_unstorable_value_is_refused_before_anything_is_recorded_or_sent(
    sender, fake, client
) -> None:
    message = example(fromUserId="sys\x00tem")

    with pytest.raises(InvalidMessageError) as caught:
        sender.send(message)

    assert (caught.value.field, caught.value.provider) == ("fromUserId", "rongcloud")
    assert "NUL" in str(caught.value)
    assert fake.requests == []
    assert walk(client, "/api/messages", "messages") == []


# --- tracking: what the read API shows ---------------------------------------------


def test_a_send_is_recorded_and_read_like_any_message(sender, fake, client, engine) -> None:
    outcome = sender.send(DOC_EXAMPLE)

    [msgid] = outcome.messages
    assert msgid == f"rc:{outcome.send_id}:0"
    response = api_get(client, f"/api/messages/{msgid}")
    assert response.status_code == 200, response.json
    summary = response.json
    assert summary["provider"] == "rongcloud" and summary["channelkey"] == APP_KEY
    assert summary["send"] == {"outcome": "sent", "code": 200, "message": "success"}
    assert summary["send_id"] == outcome.send_id and summary["part"] == 0
    assert summary["params"] == {"umstrack_send": outcome.send_id}
    assert summary["sent_at"] is not None
    assert summary["counts"]["submitted"] == 3
    assert sum(summary["counts"].values()) == 3
    assert summary["targets"]["total"] == 3
    assert summary["targets"]["by_status"]["submitted"] == 3

    events = walk(client, f"/api/messages/{msgid}/timeline", "events")
    assert sorted(e["userid"] for e in events) == ["21", "22", "23"]
    assert {(e["status"], e["channel"], e["sender"]) for e in events} == {
        ("submitted", "rongcloud", 100)
    }
    assert all(e["error"] is None for e in events)
    assert all(e["params"] == {"umstrack_send": outcome.send_id} for e in events)
    targets = walk(client, f"/api/messages/{msgid}/targets", "targets")
    assert sorted((t["recipient"], t["status"], t["channel"]) for t in targets) == [
        ("21", "submitted", "rongcloud"),
        ("22", "submitted", "rongcloud"),
        ("23", "submitted", "rongcloud"),
    ]
    with Session(engine) as session:
        row = session.scalars(select(Message).where(Message.msgid == msgid)).one()
    assert row.request == DOC_EXAMPLE  # the request as sent ...
    assert APP_SECRET not in json.dumps(row.request)  # ... and no secret in it


def test_a_failed_send_is_recorded_as_submit_failed_with_the_error(sender, fake, client) -> None:
    fake.error(1002, "toUserId 22 does not exist", 400)
    with pytest.raises(SendFailedError) as caught:
        sender.send(DOC_EXAMPLE)

    assert isinstance(caught.value.error, ProviderRefusedError)
    [part] = caught.value.outcome.parts
    assert (part.status, part.code) == ("failed", 1002)
    summary = api_get(client, f"/api/messages/{part.recorded_as}").json
    assert summary["provider"] == "rongcloud"
    assert summary["send"] == {
        "outcome": "refused",
        "code": 1002,
        "message": "toUserId 22 does not exist",
    }
    assert summary["counts"]["submit_failed"] == 3 and summary["counts"]["submitted"] == 0
    assert summary["targets"]["by_status"]["submit_failed"] == 3
    events = walk(client, f"/api/messages/{part.recorded_as}/timeline", "events")
    assert {e["channel"] for e in events} == {"rongcloud"}
    assert [e["error"] for e in events] == [
        {"code": 1002, "message": "toUserId 22 does not exist"}
    ] * 3


def test_a_failed_part_stops_the_send_and_later_parts_are_not_tried(sender, fake, client) -> None:
    def progress(text: str) -> None:
        # Refuse the second request only: queued once the first has been answered.
        if text == "part 2/3: sending to 1000 recipients":
            fake.error(1002, "refused", 400)

    with pytest.raises(SendFailedError) as caught:
        sender.send(many(2500), progress=progress)

    outcome = caught.value.outcome
    assert [(p.number, p.status, p.code) for p in outcome.parts] == [
        (0, "submitted", 200),
        (1, "failed", 1002),
        (2, "not_tried", None),
    ]
    assert len(fake.requests) == 2
    listed = walk(client, "/api/messages", "messages", send_id=outcome.send_id)
    assert sorted(
        (m["part"], m["send"]["outcome"], m["counts"]["submitted"], m["counts"]["submit_failed"])
        for m in listed
    ) == [(0, "sent", 1000, 0), (1, "refused", 0, 1000), (2, "not_sent", 0, 0)]
    # The untried part was recorded before anything left, and is closed as never sent.
    assert [m["msgid"] for m in listed if m["part"] == 2] == [outcome.parts[2].recorded_as]


# --- the JSON result -----------------------------------------------------------------

PART_KEYS = {
    "part",
    "recipients",
    "status",
    "recorded_as",
    "recorded",
    "code",
    "message",
    "base_url",
    "message_uids",
}
OUTCOME_KEYS = {
    "send_id",
    "provider",
    "app_key",
    "dry_run",
    "recipients",
    "submitted",
    "messages",
    "parts",
}


def test_the_result_has_its_json_shape_and_schema(sender, fake) -> None:
    def progress(text: str) -> None:
        if text == "part 2/3: sending to 1000 recipients":
            fake.error(1002, "refused", 400)

    with pytest.raises(SendFailedError) as caught:
        sender.send(many(2500), progress=progress)
    result = caught.value.outcome.model_dump(mode="json")

    assert set(result) == OUTCOME_KEYS and all(set(p) == PART_KEYS for p in result["parts"])
    assert result["provider"] == "rongcloud" and result["app_key"] == APP_KEY
    assert (result["dry_run"], result["recipients"], result["submitted"]) == (False, 2500, 1000)
    assert result["messages"] == [p["recorded_as"] for p in result["parts"]]
    assert [(p["part"], p["status"], p["code"], p["message"]) for p in result["parts"]] == [
        (0, "submitted", 200, "success"),
        (1, "failed", 1002, "refused"),
        (2, "not_tried", None, None),
    ]
    assert result["parts"][0]["base_url"] == fake.url
    assert len(result["parts"][0]["message_uids"]) == 1000
    # The model's schema describes the result exactly: it can feed the OpenAPI document.
    schema = RongCloudOutcome.model_json_schema(mode="serialization")
    Draft202012Validator(_closed(schema)).validate(result)
    assert set(schema["properties"]) == OUTCOME_KEYS


# --- the command line --------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    """``umstrack rongcloud-send ARGS`` with only ``env``'s RongCloud settings."""
    unset: dict[str, str | None] = {
        name: None
        for name in (
            "RONGCLOUD_APP_KEY",
            "RONGCLOUD_APP_SECRET",
            "RONGCLOUD_API_BASE",
            "RONGCLOUD_BACKUP_API_BASE",
        )
    }
    return invoke("rongcloud-send", *args, env={**unset, **env}, stdin=stdin)


@pytest.fixture
def cli_env(database_url, fake) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "RONGCLOUD_APP_KEY": APP_KEY,
        "RONGCLOUD_APP_SECRET": APP_SECRET,
        "RONGCLOUD_API_BASE": fake.url,
    }


def test_cli_sends_prints_the_result_and_records_it(cli_env, fake, client, tmp_path) -> None:
    path = tmp_path / "message.json"
    path.write_text(json.dumps(DOC_EXAMPLE), "utf-8")
    result = _cli(cli_env, str(path))

    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["provider"] == "rongcloud" and printed["submitted"] == 3
    [msgid] = printed["messages"]
    assert "umstrack: part 1/1: sending to 3 recipients" in result.stderr  # progress, on stderr
    assert "umstrack: part 1/1: submitted" in result.stderr
    assert len(fake.requests) == 1 and fake.requests[0].signed
    assert api_get(client, f"/api/messages/{msgid}").json["counts"]["submitted"] == 3


def test_cli_dry_run_prints_each_recipient_s_content_and_sends_nothing(fake, database_url) -> None:
    # No credentials needed: a dry run only checks and renders.
    result = _cli({"DATABASE_URL": database_url}, "--dry-run", "-", stdin=json.dumps(DOC_EXAMPLE))
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == preview_template(DOC_EXAMPLE)
    assert [
        (r["toUserId"], json.loads(r["content"])["content"], r["pushContent"])
        for r in printed["rendered"]
    ] == [
        ("21", "Tom:2", "hello Tom"),
        ("22", "Jerry:5", "hello Jerry"),
        ("23", "Rose:10", "hello Rose"),
    ]
    assert printed["requests"] == [{"part": 0, "recipients": 3}]
    assert fake.requests == []


@pytest.mark.parametrize(
    ("args", "stdin", "reason"),
    [
        (
            ["-"],
            json.dumps(example(objectName="RC:Points")),
            "umstrack: invalid message: objectName",
        ),
        (
            ["--dry-run", "-"],
            json.dumps(example(values=DOC_EXAMPLE["values"][:1])),
            "umstrack: invalid message: values",
        ),
        (
            ["--dry-run", "-"],
            json.dumps(example(toUserId=[])),
            "umstrack: invalid message: toUserId",
        ),
        (["-"], "{not json", "umstrack: cannot read -: "),
    ],
)
def test_cli_refuses_invalid_input_with_exit_2(cli_env, fake, args, stdin, reason) -> None:
    result = _cli(cli_env, *args, stdin=stdin)
    assert result.exit_code == 2
    assert reason in result.stderr and result.stdout == ""
    assert fake.requests == []


def test_cli_without_credentials_exits_2(database_url, fake) -> None:
    result = _cli({"DATABASE_URL": database_url}, "-", stdin=json.dumps(DOC_EXAMPLE))
    assert result.exit_code == 2 and "RONGCLOUD_APP_KEY" in result.stderr
    assert result.stderr == (
        "umstrack: cannot send: set RONGCLOUD_APP_KEY and RONGCLOUD_APP_SECRET\n"
    )
    assert result.stdout == "" and fake.requests == []


def test_cli_reports_a_rongcloud_error_with_exit_1(cli_env, fake) -> None:
    env = {**cli_env, "RONGCLOUD_APP_SECRET": "wrong-secret"}
    result = _cli(env, "-", stdin=json.dumps(DOC_EXAMPLE))
    assert result.exit_code == 1
    assert "1004" in result.stderr and "signature error" in result.stderr
    assert "umstrack: send failed: RongCloud error 1004 (HTTP 401)" in result.stderr
    printed = json.loads(result.stdout)
    assert printed["parts"][0]["status"] == "failed" and printed["parts"][0]["code"] == 1004


def test_cli_help_names_the_settings_and_exit_codes() -> None:
    result = invoke("rongcloud-send", "--help", env={})
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "FILE" in text and "--dry-run" in text
    for name in ("RONGCLOUD_APP_KEY", "RONGCLOUD_APP_SECRET", "RONGCLOUD_API_BASE", "DATABASE_URL"):
        assert name in text
    assert "Exit 0 sent, 1 RongCloud refused or could not be reached, 2 invalid" in text
