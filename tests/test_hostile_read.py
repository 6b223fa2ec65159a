"""Hostile input at the read API (issue 11): every bad parameter answers 400 with a
message that starts with its name (an unknown one, one given twice, a tampered
cursor, NUL anywhere), an impossible msgid 404, the edges of time 200. Never 5xx."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest

from tests.helpers import MSGID, SENT_TIME, bearer, post, record
from tests.hostile_cases import cursor, raw_cursor

LIST = "/api/messages"
TIMELINE = f"/api/messages/{MSGID}/timeline"
TARGETS = f"/api/messages/{MSGID}/targets"
T = "2026-11-01T00:00:00+00:00"


def get(client, path: str, pairs: list[tuple[str, str]]):
    return client.get(path, query_string=urlencode(pairs), headers=bearer())


@pytest.fixture
def known(client) -> None:
    """Two targets of MSGID, three events: every list has something to page through."""
    batch = [
        record(2, userid="u1", sent_time=SENT_TIME),
        record(4, userid="u1", sent_time=SENT_TIME + 1),
        record(4, userid="u2", sent_time=SENT_TIME + 2),
    ]
    assert post(client, batch).json["stored"] == 3


def _p(path: str, pairs: list[tuple[str, str]], parameter: str, id: str):
    return pytest.param(path, pairs, parameter, id=id)


BAD_PARAMETERS = [
    # Parameters a list does not take, and names that only look like them.
    _p(LIST, [("foo", "1")], "foo", "unknown"),
    _p(LIST, [("Limit", "1")], "Limit", "unknown-case"),
    _p(LIST, [("params", "x")], "params", "unknown-field-name"),
    _p(LIST, [("param.", "x")], "param.", "unknown-empty-param-key"),
    _p(LIST, [("", "1")], "", "unknown-empty-name"),
    _p(TIMELINE, [("status", "delivered")], "status", "timeline-takes-no-status"),
    _p(TARGETS, [("sendno", "s")], "sendno", "targets-take-no-sendno"),
    _p(TARGETS, [("since", T)], "since", "targets-take-no-since"),
    # Single-valued parameters given twice.
    _p(LIST, [("limit", "1"), ("limit", "2")], "limit", "limit-twice"),
    _p(LIST, [("limit", "1"), ("limit", "1")], "limit", "limit-twice-same"),
    _p(LIST, [("status", "delivered"), ("status", "clicked")], "status", "status-twice"),
    _p(LIST, [("cursor", cursor("m", T, "a")), ("cursor", cursor("m", T, "b"))], "cursor", "c2"),
    _p(LIST, [("since", T), ("since", T)], "since", "since-twice"),
    _p(LIST, [("until", T), ("until", T)], "until", "until-twice"),
    _p(LIST, [("sendno", "a"), ("sendno", "b")], "sendno", "sendno-twice"),
    _p(TIMELINE, [("limit", "5"), ("limit", "5")], "limit", "timeline-limit-twice"),
    _p(TARGETS, [("status", "delivered")] * 2, "status", "targets-status-twice"),
    # limit: 1 to 1000, ASCII digits.
    _p(LIST, [("limit", "0")], "limit", "limit-0"),
    _p(LIST, [("limit", "1001")], "limit", "limit-1001"),
    _p(LIST, [("limit", "²")], "limit", "limit-superscript"),
    _p(LIST, [("limit", "١")], "limit", "limit-arabic-indic"),
    _p(LIST, [("limit", "１")], "limit", "limit-fullwidth"),
    _p(LIST, [("limit", "-1")], "limit", "limit--1"),
    _p(LIST, [("limit", " 1")], "limit", "limit-leading-space"),
    _p(LIST, [("limit", "1 ")], "limit", "limit-trailing-space"),
    _p(LIST, [("limit", "+1")], "limit", "limit-plus"),
    _p(LIST, [("limit", "1.0")], "limit", "limit-float"),
    _p(LIST, [("limit", "1e2")], "limit", "limit-exponent"),
    _p(LIST, [("limit", "0x10")], "limit", "limit-hex"),
    _p(LIST, [("limit", "")], "limit", "limit-empty"),
    _p(LIST, [("limit", "9" * 5000)], "limit", "limit-5000-digits"),
    _p(TIMELINE, [("limit", "1\x00")], "limit", "limit-nul"),
    _p(TARGETS, [("limit", "0")], "limit", "targets-limit-0"),
    # status
    _p(LIST, [("status", "")], "status", "status-empty"),
    _p(LIST, [("status", "4")], "status", "status-number"),
    _p(TARGETS, [("status", "delivered\x00")], "status", "status-nul"),
    # since, until
    _p(LIST, [("since", "yesterday")], "since", "since-words"),
    _p(LIST, [("since", "2026-02-30")], "since", "since-feb-30"),
    _p(LIST, [("since", "2026-01-01T25:00:00")], "since", "since-hour-25"),
    _p(LIST, [("since", "9999-12-31T23:59:60")], "since", "since-leap-second"),
    _p(LIST, [("since", "10000-01-01")], "since", "since-year-10000"),
    _p(LIST, [("since", "0000-01-01")], "since", "since-year-0"),
    _p(LIST, [("since", "2026-01-01T00:00:00+24:00")], "since", "since-offset-24h"),
    _p(LIST, [("since", "\x00")], "since", "since-nul"),
    _p(LIST, [("until", "2026-01-01\x00")], "until", "until-nul"),
    _p(LIST, [("until", "2026-01-01T00:00:00+" + "9" * 5000)], "until", "until-huge-offset"),
    _p(LIST, [("until", "-" * 5000)], "until", "until-5000-dashes"),
    _p(LIST, [("until", "")], "until", "until-empty"),
    # NUL in a value or a param.<key> name: no stored value holds one.
    _p(LIST, [("sendno", "s\x00")], "sendno", "sendno-nul"),
    _p(LIST, [("send_id", "\x00")], "send_id", "send_id-nul"),
    _p(LIST, [("param.order_id", "1\x00")], "param.order_id", "param-value-nul"),
    _p(LIST, [("param.a\x00b", "1")], "param.a\x00b", "param-key-nul"),
    _p(LIST, [("fo\x00o", "1")], "fo\x00o", "unknown-name-nul"),
    _p(LIST, [("cursor", "\x00")], "cursor", "cursor-nul"),
]

TAMPERED_CURSORS = [
    # Not base64url of JSON, or not a list.
    _p(LIST, [("cursor", "not a cursor!")], "cursor", "not-base64"),
    _p(LIST, [("cursor", "é")], "cursor", "non-ascii"),
    _p(LIST, [("cursor", "A" * 20000)], "cursor", "20000-chars"),
    _p(LIST, [("cursor", raw_cursor('{"m": 1}'))], "cursor", "object"),
    _p(LIST, [("cursor", raw_cursor("[" * 1000))], "cursor", "1000-brackets"),
    _p(TIMELINE, [("cursor", raw_cursor("[" * 1000))], "cursor", "timeline-1000-brackets"),
    _p(TARGETS, [("cursor", raw_cursor("[" * 100_000))], "cursor", "targets-100000-brackets"),
    _p(TARGETS, [("cursor", raw_cursor("[" * 999 + "]" * 999))], "cursor", "deep-empty-lists"),
    # The wrong size, or another list's cursor.
    _p(LIST, [("cursor", cursor())], "cursor", "empty-list"),
    _p(LIST, [("cursor", cursor("m", T))], "cursor", "messages-too-short"),
    _p(LIST, [("cursor", cursor("m", T, MSGID, MSGID))], "cursor", "messages-too-long"),
    _p(TARGETS, [("cursor", cursor("r", "u1"))], "cursor", "targets-too-short"),
    _p(TARGETS, [("cursor", cursor("r", "u1", 1, 2))], "cursor", "targets-too-long"),
    _p(TIMELINE, [("cursor", cursor("t", T, T, 4))], "cursor", "timeline-too-short"),
    _p(LIST, [("cursor", cursor("t", T, T, 4, "k"))], "cursor", "timeline-cursor-on-messages"),
    _p(TIMELINE, [("cursor", cursor("r", "u1", 1))], "cursor", "targets-cursor-on-timeline"),
    _p(TARGETS, [("cursor", cursor("m", T, MSGID))], "cursor", "messages-cursor-on-targets"),
    # Integers no stored row has.
    _p(TARGETS, [("cursor", cursor("r", "u1", 2**15))], "cursor", "sender-2**15"),
    _p(TARGETS, [("cursor", cursor("r", "u1", -(2**15) - 1))], "cursor", "sender--2**15-1"),
    _p(TARGETS, [("cursor", cursor("r", "u1", 2**63))], "cursor", "sender-2**63"),
    _p(TARGETS, [("cursor", cursor("r", "u1", 10**400))], "cursor", "sender-10**400"),
    _p(TARGETS, [("cursor", raw_cursor('["r","u1",' + "1" * 4301 + "]"))], "cursor", "4301-digits"),
    _p(TARGETS, [("cursor", cursor("r", "u1", True))], "cursor", "sender-bool"),
    _p(TARGETS, [("cursor", cursor("r", "u1", 1.5))], "cursor", "sender-float"),
    _p(TARGETS, [("cursor", raw_cursor('["r","u1",1e400]'))], "cursor", "sender-1e400"),
    _p(TARGETS, [("cursor", raw_cursor('["r","u1",NaN]'))], "cursor", "sender-nan"),
    _p(TIMELINE, [("cursor", cursor("t", T, T, 2**63, "k"))], "cursor", "type-2**63"),
    # Times no stored row has, or that are no time at all.
    _p(LIST, [("cursor", cursor("m", "9999-12-31T23:59:59-05:00", MSGID))], "cursor", "max-5h"),
    _p(LIST, [("cursor", cursor("m", "0001-01-01T00:00:00+05:00", MSGID))], "cursor", "min+5h"),
    _p(
        TIMELINE,
        [("cursor", cursor("t", "9999-12-31T23:59:59-05:00", T, 4, "k"))],
        "cursor",
        "timeline-max-5h",
    ),
    _p(
        TIMELINE,
        [("cursor", cursor("t", T, "0001-01-01T00:00:00+05:00", 4, "k"))],
        "cursor",
        "timeline-received-min+5h",
    ),
    _p(LIST, [("cursor", cursor("m", "2026-11-01T00:00:00", MSGID))], "cursor", "no-offset"),
    _p(LIST, [("cursor", cursor("m", SENT_TIME, MSGID))], "cursor", "time-as-number"),
    _p(LIST, [("cursor", cursor("m", "yesterday", MSGID))], "cursor", "time-as-words"),
    _p(LIST, [("cursor", cursor("m", T, None))], "cursor", "msgid-null"),
    _p(LIST, [("cursor", cursor("m", T, 5))], "cursor", "msgid-number"),
    _p(TARGETS, [("cursor", cursor("r", "u1\x00", 1))], "cursor", "recipient-nul"),
    _p(TARGETS, [("cursor", raw_cursor('["r","\\ud800",1]'))], "cursor", "recipient-surrogate"),
]


def assert_bad_parameter(response, parameter: str) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.json["error"] == "invalid_parameter"
    assert response.json["message"].startswith(f"{parameter}: "), response.json["message"]


def test_the_corpus_is_large_enough():
    assert len(BAD_PARAMETERS) + len(TAMPERED_CURSORS) >= 25


@pytest.mark.usefixtures("known")
@pytest.mark.parametrize(("path", "pairs", "parameter"), BAD_PARAMETERS)
def test_bad_parameter_is_400_naming_it(client, path, pairs, parameter):
    assert_bad_parameter(get(client, path, pairs), parameter)


@pytest.mark.usefixtures("known")
@pytest.mark.parametrize(("path", "pairs", "parameter"), TAMPERED_CURSORS)
def test_tampered_cursor_is_400(client, path, pairs, parameter):
    assert_bad_parameter(get(client, path, pairs), parameter)


@pytest.mark.usefixtures("known")
def test_a_real_cursor_still_pages_after_the_tampering(client):
    # The tampered cursors are refused, and the ones this service hands out still work.
    for path, pairs, _ in (case.values for case in TAMPERED_CURSORS):
        assert get(client, path, pairs).status_code == 400
    first = get(client, TIMELINE, [("limit", "2")]).json
    rest = get(client, TIMELINE, [("cursor", first["next_cursor"])]).json
    assert [e["status"] for e in first["events"] + rest["events"]] == [
        "submitted",
        "delivered",
        "delivered",
    ]
    assert rest["next_cursor"] is None


@pytest.mark.usefixtures("known")
@pytest.mark.parametrize("tail", ["", "/timeline", "/targets"], ids=["summary", "timeline", "t"])
@pytest.mark.parametrize(
    "msgid",
    [
        pytest.param(f"{MSGID}%00", id="known-msgid-then-nul"),
        pytest.param("%00", id="nul"),
        pytest.param("a%00b", id="nul-inside"),
        pytest.param("%ED%A0%80", id="utf8-encoded-surrogate"),
        pytest.param("%FF%FE", id="invalid-utf8"),
        pytest.param("m" * 5000, id="5000-chars"),
    ],
)
def test_impossible_msgid_in_the_path_is_404(client, msgid, tail):
    response = client.get(f"/api/messages/{msgid}{tail}", headers=bearer())
    assert response.status_code == 404, response.get_data(as_text=True)[:300]
    assert response.json["error"] == "not_found"


@pytest.mark.usefixtures("known")
@pytest.mark.parametrize(
    ("pairs", "listed"),
    [
        pytest.param([("since", "0001-01-01T00:00:00+05:00")], True, id="since-min+5h"),
        pytest.param([("since", "0001-01-01T00:00:00 05:00")], True, id="since-min-unencoded"),
        pytest.param([("since", "0001-01-01T00:00:00-05:00")], True, id="since-min-5h"),
        pytest.param([("since", "0001-01-01T00:00:00")], True, id="since-min"),
        pytest.param([("until", "9999-12-31T23:59:59-05:00")], True, id="until-max-5h"),
        pytest.param([("until", "9999-12-31T23:59:59.999999")], True, id="until-max"),
        pytest.param([("until", "9999-12-31T23:59:59+14:00")], True, id="until-max+14h"),
        pytest.param(
            [("since", "0001-01-01T00:00:00+05:00"), ("until", "9999-12-31T23:59:59-05:00")],
            True,
            id="since-min-until-max",
        ),
        pytest.param([("since", "9999-12-31T23:59:59-05:00")], False, id="since-max-5h"),
        pytest.param([("since", "9999-12-31T23:59:59.999999-14:00")], False, id="since-max-14h"),
        pytest.param([("until", "0001-01-01T00:00:00+05:00")], False, id="until-min+5h"),
        pytest.param([("until", "0001-01-01T00:00:00")], False, id="until-min"),
    ],
)
def test_times_at_the_edges_are_the_earliest_and_latest(client, pairs, listed):
    response = get(client, LIST, pairs)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert [m["msgid"] for m in response.json["messages"]] == ([MSGID] if listed else [])
    assert response.json["next_cursor"] is None


@pytest.mark.usefixtures("known")
def test_param_filter_with_odd_text_finds_nothing_and_fails_nothing(client):
    odd = ["'; DROP TABLE message; --", "%", "_", "\\", '"', "{}", "[1]", "1e400", "😀" * 300]
    for value in odd:
        response = get(client, LIST, [("param.order_id", value)])
        assert response.status_code == 200 and response.json["messages"] == []
        response = get(client, LIST, [(f"param.{value}", "123")])
        assert response.status_code == 200 and response.json["messages"] == []
    # The filter still finds what it should (order_id "123" is what record() sends).
    found = get(client, LIST, [("param.order_id", "123")]).json["messages"]
    assert [m["msgid"] for m in found] == [MSGID]


def test_msgid_of_odd_but_valid_text_reads_back(client):
    msgid = "消息 🚀 \u202e:1%"  # no "/": it would end the path segment
    assert post(client, [record(4, msgid=msgid)]).json["stored"] == 1
    response = client.get(f"/api/messages/{quote(msgid, safe='')}", headers=bearer())
    assert response.status_code == 200 and response.json["msgid"] == msgid
    assert response.json["counts"]["delivered"] == 1
