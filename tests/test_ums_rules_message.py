"""UMS rules for the whole send body: its keys, rule_id, option and callback, the error
and the order of checks (sender/ums/rules/message.py)."""

from __future__ import annotations

import pytest

from sender.errors import InvalidMessageError
from sender.ums.protocol import SendKind
from sender.ums.rules import validate_message
from tests.ums_examples import (
    BASE,
    DOC_REQUEST,
    DROP,
    case,
    changed,
)

VALID = [
    pytest.param("sent", DOC_REQUEST, id="doc-request-example"),
    pytest.param("broadcast", changed(BASE, aud_userid=DROP), id="broadcast"),
    pytest.param(SendKind.SENT, BASE, id="kind-as-enum"),
]

INVALID = [
    # structure
    case("not-an-object", [], "message"),
    case("unknown-top-level-key", changed(BASE, sendno="x"), "sendno"),
    case("unknown-channel", changed(BASE, msg_fax=[{}]), "msg_fax"),
    case(
        "linkedcorp-has-no-msg",
        changed(BASE, msg_wechatwk_linkedcorp=[{}]),
        "msg_wechatwk_linkedcorp",
    ),
    case("unknown-audience", changed(BASE, aud_fax=["x"]), "aud_fax"),
    # 5G messaging is a callback sender only: no page or SDK sends on it.
    case("no-5g-channel", changed(BASE, msg_5g=[{"content": "x"}]), "msg_5g"),
    case(
        "no-5g-audience",
        {"aud_5g": [{"data": ["13800000000"]}], "msg_sms": [{"content": "x"}]},
        "aud_5g",
    ),
    case("template-field-in-normal-send", changed(BASE, template_id=1), "template_id"),
    # rule_id
    case("rule_id-string", changed(BASE, rule_id="1001"), "rule_id"),
    case("rule_id-bool", changed(BASE, rule_id=True), "rule_id"),
    case("rule_id-negative", changed(BASE, rule_id=-1), "rule_id"),
    # option
    case("option-not-object", changed(BASE, option=[]), "option"),
    case("option-priority-0", changed(BASE, option={"priority": 0}), "option.priority"),
    case("option-priority-4", changed(BASE, option={"priority": 4}), "option.priority"),
    case("option-priority-string", changed(BASE, option={"priority": "1"}), "option.priority"),
    case(
        "option-black-and-white",
        changed(BASE, option={"black_id": 1, "white_id": 2}),
        "option.white_id",
        1015097,
    ),
    case("option-black_id-string", changed(BASE, option={"black_id": "1"}), "option.black_id"),
    case("option-sendno-not-string", changed(BASE, option={"sendno": 1}), "option.sendno"),
    # callback
    case("callback-not-object", changed(BASE, callback="https://x.example"), "callback"),
    case("callback-url-ftp", changed(BASE, callback={"url": "ftp://x.example/cb"}), "callback.url"),
    case("callback-url-relative", changed(BASE, callback={"url": "/cb"}), "callback.url"),
    case("callback-url-not-string", changed(BASE, callback={"url": 1}), "callback.url"),
    case(
        "callback-params-not-object", changed(BASE, callback={"params": ["a"]}), "callback.params"
    ),
]


def test_error_is_a_value_error_with_field_reason_and_code() -> None:
    with pytest.raises(ValueError, match=r"^option\.priority: must be one of 1, 2, 3, got 9$"):
        validate_message(changed(BASE, option={"priority": 9}), kind="sent")


def test_first_error_in_documented_order() -> None:
    # Audience comes before contents, contents before rule_id/option/callback.
    message = changed(
        BASE, aud_userid=["bad id"], msg_sms=[{}], option={"priority": 9}, rule_id="x"
    )
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind="sent")
    assert caught.value.field == "aud_userid[0]"
    message["aud_userid"] = ["ok"]
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind="sent")
    assert caught.value.field == "msg_sms[0].temp_id"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'push'"):
        validate_message(BASE, kind="push")


def test_null_optional_fields_count_as_absent() -> None:
    validate_message(
        changed(BASE, option={"black_id": 1, "white_id": None}, callback=None), kind="sent"
    )
