"""Personalised UMS sends: rendering {placeholders} per recipient and grouping identical
contents (sender/ums/rules/personalise.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sender.errors import InvalidMessageError
from sender.ums.rules import render_personalised, split_message, validate_message
from tests.ums_examples import changed

# The RongCloud template-message idea: one content with {c}{d}, values per recipient.
APP_TEMPLATE: dict[str, Any] = {
    "msg_app": [
        {
            "platform": "all",
            "notification": {"alert": "hello {c}"},
            "message": {"msg_content": '{"content":"{c}{d}","extra":"bb"}'},
        }
    ],
    "option": {"sendno": "batch-7"},
}


def to_user(uid: str, **values: Any) -> dict[str, Any]:
    return {"to": {"aud_userid": uid}, "values": values}


def test_personalised_rongcloud_example_groups_identical_contents() -> None:
    recipients = [
        to_user("21", c="Tom", d=":2"),
        to_user("22", c="Jerry", d=":5"),
        to_user("23", c="Rose", d=":10"),
        to_user("24", c="Tom", d=":2"),
    ]
    messages = render_personalised(APP_TEMPLATE, recipients)
    assert [m["aud_userid"] for m in messages] == [["21", "24"], ["22"], ["23"]]
    assert [m["msg_app"][0]["notification"]["alert"] for m in messages] == [
        "hello Tom",
        "hello Jerry",
        "hello Rose",
    ]
    assert [m["msg_app"][0]["message"]["msg_content"] for m in messages] == [
        '{"content":"Tom:2","extra":"bb"}',
        '{"content":"Jerry:5","extra":"bb"}',
        '{"content":"Rose:10","extra":"bb"}',
    ]
    for m in messages:
        assert m["option"] == {"sendno": "batch-7"}
        validate_message(m, kind="sent")


def test_personalised_groups_by_rendered_content_not_by_values() -> None:
    # Different values, same rendered text: one message.
    template = {"msg_sms": [{"content": "{a}{b}"}]}
    messages = render_personalised(
        template,
        [
            {"to": {"aud_sms": "13800000001"}, "values": {"a": "x", "b": "y"}},
            {"to": {"aud_sms": "13800000002"}, "values": {"a": "xy", "b": ""}},
        ],
    )
    assert messages == [
        {"aud_sms": [{"data": ["13800000001", "13800000002"]}], "msg_sms": [{"content": "xy"}]}
    ]
    validate_message(messages[0], kind="sent")


def test_personalised_missing_placeholder_names_recipient_and_placeholder() -> None:
    recipients = [
        to_user("21", c="Tom", d=":2"),
        to_user("22", c="Jerry", d=":5"),
        to_user("23", c="Rose"),
    ]
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(APP_TEMPLATE, recipients)
    assert (caught.value.field, caught.value.code) == ("recipients[2].values.d", 4004)


def test_personalised_recipient_without_values() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(APP_TEMPLATE, [{"to": {"aud_userid": "21"}}])
    assert caught.value.field == "recipients[0].values.c"


def test_personalised_values_are_not_expanded_again() -> None:
    messages = render_personalised(APP_TEMPLATE, [to_user("21", c="{d}", d="{c}")])
    entry = messages[0]["msg_app"][0]
    assert entry["notification"]["alert"] == "hello {d}"
    assert entry["message"]["msg_content"] == '{"content":"{d}{c}","extra":"bb"}'


def test_personalised_keeps_braces_that_are_not_placeholders() -> None:
    text = '{"a": {1}, {}, { name }, {9x}, {-b} {'
    messages = render_personalised({"msg_sms": [{"content": text}]}, [{"to": {"aud_sms": "1"}}])
    assert messages[0]["msg_sms"][0]["content"] == text
    # {{b}} holds the placeholder {b}; the outer braces are kept.
    messages = render_personalised(
        {"msg_sms": [{"content": "{{b}}"}]}, [{"to": {"aud_sms": "1"}, "values": {"b": "v"}}]
    )
    assert messages[0]["msg_sms"][0]["content"] == "{v}"


def test_personalised_numbers_render_and_other_values_fail() -> None:
    template = {"msg_sms": [{"temp_id": 1, "temp_para": {"code": "{code}", "n": "{n}"}}]}
    messages = render_personalised(
        template, [{"to": {"aud_sms": "1"}, "values": {"code": 1234, "n": 1.5}}]
    )
    assert messages[0]["msg_sms"][0] == {"temp_id": 1, "temp_para": {"code": "1234", "n": "1.5"}}
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(template, [{"to": {"aud_sms": "1"}, "values": {"code": True, "n": 1}}])
    assert caught.value.field == "recipients[0].values.code"


def test_personalised_order_is_first_appearance_and_ids_are_not_doubled() -> None:
    template = {"msg_sms": [{"content": "hi {n}"}]}
    recipients = [
        {"to": {"aud_sms": phone}, "values": {"n": name}}
        for phone, name in [("3", "B"), ("1", "A"), ("3", "B"), ("2", "B"), ("1", "C")]
    ]
    messages = render_personalised(template, recipients)
    assert [(m["msg_sms"][0]["content"], m["aud_sms"][0]["data"]) for m in messages] == [
        ("hi B", ["3", "2"]),
        ("hi A", ["1"]),
        ("hi C", ["1"]),
    ]


def test_personalised_does_not_change_the_template() -> None:
    before = copy.deepcopy(APP_TEMPLATE)
    messages = render_personalised(APP_TEMPLATE, [to_user("21", c="Tom", d="!")])
    messages[0]["option"]["sendno"] = "changed"
    assert before == APP_TEMPLATE


def test_personalised_then_split_and_validate() -> None:
    template = {"msg_sms": [{"temp_id": 1, "temp_para": {"greeting": "{g}"}}]}
    recipients = [to_user(f"u{i}", g="hi" if i % 2 else "hello") for i in range(2500)]
    messages = render_personalised(template, recipients)
    assert [len(m["aud_userid"]) for m in messages] == [1250, 1250]
    parts = [part for m in messages for part in split_message(m)]
    assert [len(p["aud_userid"]) for p in parts] == [1000, 250, 1000, 250]
    for part in parts:
        validate_message(part, kind="sent")


@pytest.mark.parametrize(
    ("template", "recipients", "field"),
    [
        pytest.param(
            changed(APP_TEMPLATE, aud_userid=["x"]),
            [to_user("1", c="", d="")],
            "template.aud_userid",
            id="template-with-audience",
        ),
        pytest.param(APP_TEMPLATE, [], "recipients", id="no-recipients"),
        pytest.param(APP_TEMPLATE, ["21"], "recipients[0]", id="recipient-not-object"),
        pytest.param(APP_TEMPLATE, [{"values": {}}], "recipients[0].to", id="recipient-without-to"),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_tag": "t"}}],
            "recipients[0].to",
            id="tag-is-not-a-recipient",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": "1", "aud_sms": "2"}}],
            "recipients[0].to",
            id="two-audiences",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": 21}}],
            "recipients[0].to.aud_userid",
            id="id-not-string",
        ),
        pytest.param(
            APP_TEMPLATE,
            [to_user("1", c="", d=""), {"to": {"aud_sms": "2"}, "values": {"c": "", "d": ""}}],
            "recipients[1].to",
            id="mixed-audience-kinds",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": "1"}, "values": ["c"]}],
            "recipients[0].values",
            id="values-not-object",
        ),
    ],
)
def test_personalised_input_errors(template: Any, recipients: Any, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(template, recipients)
    assert (caught.value.field, caught.value.code) == (field, 4004)
