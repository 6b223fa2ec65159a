"""A UMS send request (the body of POST /api/messages, the FILE of `umstrack send`): our
keys are checked by the SendRequest model, each broken one named like a broken rule of
the UMS message; every other key is the message."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.sending.request import SendRequest, parse_request
from sender.errors import InvalidMessageError
from sender.ums.protocol import SendKind

MESSAGE = {"aud_userid": ["u1"], "msg_sms": [{"temp_id": 1}], "option": {"sendno": "s-1"}}
RECIPIENTS = [{"to": {"aud_userid": "u1"}, "values": {"name": "Tom"}}]
PERSONALISED_BROADCAST = "a personalised send names its recipients: no broadcast"


@pytest.mark.parametrize(
    ("body", "options", "field", "reason"),
    [
        ([1, 2], {}, "message", "must be a JSON object"),
        ("message", {}, "message", "must be a JSON object"),
        (None, {"channelkey": "c"}, "message", "must be a JSON object"),
        ({"broadcast": "yes"}, {}, "broadcast", "must be true or false"),
        ({"broadcast": 1}, {"broadcast": True}, "broadcast", "must be true or false"),
        ({"template": None}, {}, "template", "must be true or false"),
        ({"channelkey": 7}, {"channelkey": "c"}, "channelkey", "must be a string"),
        ({"recipients": "u1"}, {}, "recipients", "must be an array"),
        ({"recipients": {"to": {}}}, {}, "recipients", "must be an array"),
        ({"recipients": RECIPIENTS, "broadcast": True}, {}, "recipients", PERSONALISED_BROADCAST),
        ({"recipients": RECIPIENTS}, {"broadcast": True}, "recipients", PERSONALISED_BROADCAST),
        # Several broken: the first in the order broadcast, template, channelkey, recipients.
        (
            {"recipients": 1, "channelkey": 2, "broadcast": "x"},
            {},
            "broadcast",
            "must be true or false",
        ),
        ({"recipients": 1, "channelkey": 2}, {}, "channelkey", "must be a string"),
    ],
)
def test_a_broken_key_of_ours_is_an_invalid_message_naming_it(
    body: Any, options: dict[str, Any], field: str, reason: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse_request(body, **options)
    assert caught.value.field == field
    assert caught.value.reason == reason
    assert (caught.value.code, caught.value.provider) == (4004, "ums")


@pytest.mark.parametrize(
    ("flags", "options", "kind"),
    [
        ({}, {}, SendKind.SENT),
        ({"broadcast": True}, {}, SendKind.BROADCAST),
        ({}, {"broadcast": True}, SendKind.BROADCAST),
        ({"template": True}, {}, SendKind.TEMPLATE_SENT),
        ({"broadcast": False}, {"template": True}, SendKind.TEMPLATE_SENT),
        ({"template": True}, {"broadcast": True}, SendKind.TEMPLATE_BROADCAST),
    ],
)
def test_body_keys_and_options_both_turn_a_flag_on(
    flags: dict[str, Any], options: dict[str, Any], kind: SendKind
) -> None:
    assert parse_request({**MESSAGE, **flags}, **options).kind is kind


def test_the_message_is_every_key_not_ours_in_order() -> None:
    request = parse_request(
        {"broadcast": False, **MESSAGE, "channelkey": "c1", "template_para": {"a": 1}}
    )
    assert request.message == {**MESSAGE, "template_para": {"a": 1}}
    assert list(request.message) == ["aud_userid", "msg_sms", "option", "template_para"]
    assert request.recipients is None


def test_a_personalised_request_keeps_its_recipients_for_the_rules() -> None:
    # The entries are the personalised rules' to check: here only the array is.
    request = parse_request({**MESSAGE, "recipients": [*RECIPIENTS, "not an object"]})
    assert request.recipients == [*RECIPIENTS, "not an object"]
    assert "recipients" not in request.message


@pytest.mark.parametrize(
    ("body", "option", "channelkey"),
    [
        ({}, None, None),
        ({}, "from-option", "from-option"),
        ({"channelkey": "from-body"}, "from-option", "from-body"),
        ({"channelkey": None}, "from-option", None),  # named, as none: the default channel
    ],
)
def test_the_body_s_channelkey_wins_over_the_option(
    body: dict[str, Any], option: str | None, channelkey: str | None
) -> None:
    assert parse_request({**MESSAGE, **body}, channelkey=option).channelkey == channelkey


def test_the_request_model_gives_its_schema() -> None:
    schema = SendRequest.model_json_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is True
    assert set(schema["properties"]) == {"broadcast", "template", "channelkey", "recipients"}
    assert schema["properties"]["broadcast"]["type"] == "boolean"
