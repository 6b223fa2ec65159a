"""RongCloud template private messages: every rule of a request, checked before anything
is sent (one failing case per rule), and the fields that pass through as they are."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sender.errors import InvalidMessageError
from sender.rongcloud import BUILTIN_OBJECT_NAMES, split_template, validate_template
from tests.helpers import walk
from tests.rongcloud.support import DOC_EXAMPLE, client_for, example, many

BIG_CONTENT = json.dumps({"content": "x" * (128 * 1024)})

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("no recipients", example(toUserId=[]), "toUserId", "non-empty"),
    ("recipient not a string", example(toUserId=["21", 22, "23"]), "toUserId[1]", "string"),
    ("recipient twice", example(toUserId=["21", "22", "21"]), "toUserId[2]", "already"),
    ("values short", example(values=DOC_EXAMPLE["values"][:2]), "values", "2 entries for 3"),
    ("values not maps", example(values=["Tom", "Jerry", "Rose"]), "values[0]", "object"),
    (
        "values key without braces",
        example(values=[{"c": "Tom", "d": ":2"}] * 3),
        "values[0]",
        "'{c}'",
    ),
    (
        "value not a string",
        example(values=[{"{c}": "Tom", "{d}": 2}] * 3),
        "values[0]['{d}']",
        "string",
    ),
    ("pushContent short", example(pushContent=["hello"]), "pushContent", "1 entries for 3"),
    ("pushContent missing", example(pushContent=None), "pushContent", "required"),
    ("pushData short", example(pushData=["a", "b"]), "pushData", "2 entries for 3"),
    (
        "placeholder without value in content",
        example(
            values=[{"{c}": "Tom", "{d}": ":2"}, {"{c}": "Jerry"}, {"{c}": "Rose", "{d}": ":10"}]
        ),
        "values[1]",
        "{d} (used in content)",
    ),
    (
        "placeholder without value in pushContent",
        example(pushContent=["hello {c}", "hello {c}", "hi {nick}"]),
        "values[2]",
        "{nick} (used in pushContent[2])",
    ),
    (
        "placeholder without value in pushData",
        example(pushData=['{"order":"{order}"}'] * 3),
        "values[0]",
        "{order} (used in pushData[0])",
    ),
    ("content over 128 KB", example(content=BIG_CONTENT), "content", "at most 131072"),
    (
        "content rendered not JSON",
        example(values=[{"{c}": 'Tom "T"', "{d}": ""}] * 3),
        "content",
        "toUserId[0]",
    ),
    (
        "objectName over 32 characters",
        example(objectName="App:" + "X" * 29),
        "objectName",
        "at most 32",
    ),
    (
        "custom objectName starting RC:",
        example(objectName="RC:PointsMsg"),
        "objectName",
        "may not start with 'RC:'",
    ),
    ("fromUserId missing", example(fromUserId=None), "fromUserId", "required"),
    ("fromUserId empty", example(fromUserId=""), "fromUserId", "non-empty"),
    ("unknown field", example(toUserIds=["21"]), "toUserIds", "not a field"),
    ("flag not 0 or 1", example(isIncludeSender=2), "isIncludeSender", "0 or 1"),
    ("bool flag not a bool", example(disablePush=1), "disablePush", "true or false"),
]


@pytest.mark.parametrize(
    ("message", "field", "reason"),
    [pytest.param(m, f, r, id=name) for name, m, f, r in INVALID],
)
def test_invalid_message_is_refused_naming_the_field_and_nothing_is_sent(
    sender, fake, client, message, field, reason
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        sender.send(message)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert caught.value.provider == "rongcloud"
    assert fake.requests == []
    assert walk(client, "/api/messages", "messages") == []  # and nothing recorded


def test_size_limits_carry_rongcloud_s_too_long_code() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        validate_template(example(content=BIG_CONTENT))
    assert caught.value.code == 1005


def test_other_rules_carry_rongcloud_s_parameter_error_code() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        validate_template(example(toUserId=[]))
    assert caught.value.code == 1002


def test_more_than_1000_recipients_in_one_request_is_refused(fake, clock) -> None:
    with client_for(fake.url, clock) as client, pytest.raises(InvalidMessageError) as caught:
        client.publish_template(many(1001))
    assert caught.value.field == "toUserId" and "at most 1000" in caught.value.reason
    assert fake.requests == []


@pytest.mark.parametrize("name", ["RC:TxtMsg", "RC:ImgTextMsg", "RC:CmdMsg", "App:PointsMsg"])
def test_builtin_and_custom_object_names_are_accepted(name) -> None:
    validate_template(example(objectName=name))


def test_builtin_list_holds_the_types_the_issue_names() -> None:
    named = {
        "RC:TxtMsg",
        "RC:ImgMsg",
        "RC:VcMsg",
        "RC:ImgTextMsg",
        "RC:FileMsg",
        "RC:LBSMsg",
        "RC:SightMsg",
        "RC:CmdMsg",
        "RC:InfoNtf",
    }
    assert named <= BUILTIN_OBJECT_NAMES


def test_optional_fields_pass_through(fake, clock) -> None:
    message = example(
        pushData=['{"points":"{d}"}'] * 3,
        pushExt=["", "", ""],
        isIncludeSender=1,
        verifyBlacklist=0,
        contentAvailable=1,
        disablePush=False,
        disableUpdateLastMsg=True,
        needReadReceipt=1,
        isCounted=1,
        busChannel="points",
        msgRandom=42,
    )
    with client_for(fake.url, clock) as client:
        client.publish_template(message)
    assert fake.requests[0].json == message


def test_split_cuts_every_per_recipient_array_along_with_the_recipients() -> None:
    message = many(2001)
    message["pushExt"] = [f"ext{i}" for i in range(2001)]
    parts = split_template(message)
    assert [len(p["toUserId"]) for p in parts] == [1000, 1000, 1]
    for part in parts:
        assert len(part["values"]) == len(part["pushContent"]) == len(part["pushExt"])
        assert part["content"] == DOC_EXAMPLE["content"] and part["fromUserId"] == "system"
    assert parts[2]["toUserId"] == ["u02000"] and parts[2]["pushExt"] == ["ext2000"]
