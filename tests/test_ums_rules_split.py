"""Splitting a UMS send over the per-request id limits (sender/ums/rules/split.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sender.errors import InvalidMessageError
from sender.ums.rules import split_message, validate_message
from tests.ums_examples import (
    BASE,
    DOC_APP,
    DOC_EMAIL,
    DOC_REQUEST,
    DOC_SMS_JSMS,
    DOC_WECHATWK_TEXT,
    DROP,
    TEMPLATE_BASE,
    changed,
    custom,
    userids,
)


def test_split_2500_userids_into_1000_1000_500() -> None:
    message = changed(DOC_REQUEST, aud_userid=userids(2500))
    parts = split_message(message)
    assert [len(part["aud_userid"]) for part in parts] == [1000, 1000, 500]
    assert [uid for part in parts for uid in part["aud_userid"]] == message["aud_userid"]
    for part in parts:
        assert {k: v for k, v in part.items() if k != "aud_userid"} == {
            k: v for k, v in message.items() if k != "aud_userid"
        }
        validate_message(part, kind="sent")
    # Deep copies: changing one part changes neither the message nor another part.
    parts[0]["option"]["priority"] = 1
    parts[0]["msg_app"][0]["platform"] = "ios"
    assert message["option"]["priority"] == 2 and parts[1]["option"]["priority"] == 2
    assert message["msg_app"][0]["platform"] == "android"


@pytest.mark.parametrize(
    ("count", "sizes"), [(1, [1]), (1000, [1000]), (1001, [1000, 1]), (3000, [1000, 1000, 1000])]
)
def test_split_userid_boundaries(count: int, sizes: list[int]) -> None:
    parts = split_message(changed(BASE, aud_userid=userids(count)))
    assert [len(part["aud_userid"]) for part in parts] == sizes


def test_split_within_limits_returns_a_deep_copy() -> None:
    parts = split_message(DOC_REQUEST)
    assert parts == [DOC_REQUEST]
    assert parts[0] is not DOC_REQUEST
    parts[0]["callback"]["params"]["age"] = 1
    assert DOC_REQUEST["callback"]["params"]["age"] == 26


def test_split_broadcast_is_one_copy() -> None:
    message = changed(BASE, aud_userid=DROP)
    assert split_message(message) == [message]


def test_split_keeps_tags_and_segment_on_the_first_part_only() -> None:
    message = changed(BASE, aud_tag=["t1"], aud_userid=userids(1500))
    parts = split_message(message)
    assert [part.get("aud_tag") for part in parts] == [["t1"], None]
    assert [len(part["aud_userid"]) for part in parts] == [1000, 500]


def test_split_with_custom_limit() -> None:
    parts = split_message(changed(BASE, aud_userid=userids(5)), limit=2)
    assert [part["aud_userid"] for part in parts] == [["u0", "u1"], ["u2", "u3"], ["u4"]]


def test_split_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_message(BASE, limit=0)


def test_split_custom_channels_per_channel_with_matching_contents() -> None:
    sms_ids = userids(2500, "138")
    email_ids = [f"a{i}@x.cn" for i in range(1200)]
    message = {
        "aud_sms": [
            {"instance": "sms", "data": sms_ids[:1500]},
            {"instance": "sms2", "data": sms_ids[1500:]},
        ],
        "aud_email": custom(*email_ids),
        "aud_app": custom("regid1", "regid2"),
        "msg_sms": [DOC_SMS_JSMS],
        "msg_email": [DOC_EMAIL],
        "msg_app": [DOC_APP],
        "option": {"sendno": "s1"},
    }
    validate_message(message, kind="sent", max_ids=None)
    parts = split_message(message)

    def ids(part: dict[str, Any], key: str) -> list[str]:
        return [i for entry in part.get(key, []) for i in entry["data"]]

    assert [
        (len(ids(p, "aud_sms")), len(ids(p, "aud_email")), len(ids(p, "aud_app"))) for p in parts
    ] == [
        (1000, 1000, 2),
        (1000, 200, 0),
        (500, 0, 0),
    ]
    assert [sorted(k for k in p if k.startswith("msg_")) for p in parts] == [
        ["msg_app", "msg_email", "msg_sms"],
        ["msg_email", "msg_sms"],
        ["msg_sms"],
    ]
    assert [sorted(k for k in p if k.startswith("aud_")) for p in parts] == [
        ["aud_app", "aud_email", "aud_sms"],
        ["aud_email", "aud_sms"],
        ["aud_sms"],
    ]
    assert [i for p in parts for i in ids(p, "aud_sms")] == sms_ids
    assert [i for p in parts for i in ids(p, "aud_email")] == email_ids
    # The reserved instance field stays with the ids it came with.
    assert [(e["instance"], len(e["data"])) for e in parts[1]["aud_sms"]] == [
        ("sms", 500),
        ("sms2", 500),
    ]
    for part in parts:
        assert part["option"] == {"sendno": "s1"}
        validate_message(part, kind="sent")


@pytest.mark.parametrize(
    ("big", "small"),
    [("aud_wechatwk", "aud_wechatwk_linkedcorp"), ("aud_wechatwk_linkedcorp", "aud_wechatwk")],
)
def test_split_wechatwk_and_linkedcorp_share_msg_wechatwk(big: str, small: str) -> None:
    message = {
        big: custom(*userids(1500)),
        small: custom("Corp/u1"),
        "msg_wechatwk": [DOC_WECHATWK_TEXT],
    }
    parts = split_message(message)
    assert [sorted(k for k in p if k.startswith("aud_")) for p in parts] == [
        sorted([big, small]),
        [big],
    ]
    for part in parts:
        assert part["msg_wechatwk"] == [DOC_WECHATWK_TEXT]
        validate_message(part, kind="sent")


def test_split_template_send_to_custom_targets() -> None:
    message = changed(TEMPLATE_BASE, aud_userid=DROP, aud_sms=custom(*userids(1001, "1")))
    parts = split_message(message)
    assert [len(p["aud_sms"][0]["data"]) for p in parts] == [1000, 1]
    for part in parts:
        assert part["template_para"] == {"user": "x", "url": "y"}
        validate_message(part, kind="template_sent")


def test_split_refuses_mixed_targets() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        split_message(changed(BASE, aud_sms=custom("1")))
    assert caught.value.field == "aud_sms"
