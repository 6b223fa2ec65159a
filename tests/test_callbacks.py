"""Callback intake over the app's HTTP interface, on every backend."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sender.ums.protocol import STATUS_BY_TYPE
from tests.helpers import (
    CHANNEL,
    MSGID,
    OTHER_CHANNEL,
    OTHER_SECRET,
    SENT_TIME,
    basic_auth,
    events,
    nine_type_batch,
    post,
    quarantined,
    record,
    targets,
)


def test_echostr_is_echoed_as_plain_text(client):
    response = client.get("/callbacks/ums?echostr=Zx%3A9-abc", headers=basic_auth())
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Zx:9-abc"


def test_echostr_needs_channel_auth(client):
    response = client.get("/callbacks/ums?echostr=abc")
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert "abc" not in response.get_data(as_text=True)


def test_echostr_missing_is_a_clear_error(client):
    response = client.get("/callbacks/ums", headers=basic_auth())
    assert response.status_code == 400
    assert "echostr" in response.json["message"]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param(basic_auth(secret="not-the-secret"), id="wrong-secret"),
        pytest.param(basic_auth(channelkey="unknownchannel", secret="x"), id="unknown-channel"),
        # One channel's key with another channel's secret.
        pytest.param(basic_auth(secret=OTHER_SECRET), id="other-channels-secret"),
        pytest.param({"Authorization": "Bearer abc"}, id="not-basic"),
        pytest.param({"Authorization": "Basic %%%not-base64"}, id="not-base64"),
    ],
)
def test_bad_auth_is_refused_and_nothing_stored(client, engine, headers):
    response = post(client, nine_type_batch(10), headers=headers)
    assert response.status_code == 401
    assert response.json == {"error": "unauthorized", "message": response.json["message"]}
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert events(engine) == [] and quarantined(engine) == [] and targets(engine) == {}


def test_auth_is_checked_before_the_body_is_read(client, engine):
    response = post(client, b"this is not json", headers={})
    assert response.status_code == 401
    assert quarantined(engine) == []  # an unauthenticated body is not even kept


def test_no_configured_channel_refuses_everyone(env):
    from receiver import create_app

    app = create_app({**env, "UMS_CHANNELS": ""})
    response = post(app.test_client(), [record(4)])
    assert response.status_code == 401
    app.extensions["umstrack.engine"].dispose()


def test_hundred_record_batch_with_all_types_and_channels_is_stored(client, engine):
    batch = nine_type_batch(100)
    response = post(client, batch)

    assert response.status_code == 200
    assert response.json == {"received": 100, "stored": 100, "duplicates": 0, "quarantined": 0}
    stored = {(e.userid, e.type): e for e in events(engine)}
    assert len(stored) == 100
    assert {e.type for e in stored.values()} == set(range(9))
    assert {e.sender for e in stored.values()} == set(range(11))
    for rec in batch:
        event = stored[(rec["userid"], rec["type"])]
        assert event.msgid == MSGID and event.channelkey == CHANNEL
        assert event.sender_id == rec["sender_id"] and event.sender == rec["sender"]
        assert event.sent_time == rec["sent_time"]
        assert event.occurred_at == datetime.fromtimestamp(rec["sent_time"], UTC)
        assert event.params == {"order_id": "123"}
        assert event.raw == rec
        assert event.received_at.tzinfo is not None
        assert event.wechatwk_sender == rec.get("wechatwk_sender")
        assert event.app_platform == (None if "app_platform" not in rec else "0")
        assert event.app_sender == rec.get("app_sender")
        if "error" in rec:
            assert (event.error_code, event.error_message) == (
                rec["error"]["code"],
                rec["error"]["message"],
            )
        else:
            assert event.error_code is None and event.error_message is None
    current = targets(engine)
    assert len(current) == 100
    assert all(t.event_count == 1 for t in current.values())


def test_single_record_object_is_accepted(client, engine):
    response = post(client, record(4))
    assert response.json == {"received": 1, "stored": 1, "duplicates": 0, "quarantined": 0}
    assert [e.type for e in events(engine)] == [4]


def test_empty_array_is_fine(client):
    response = post(client, [])
    assert response.json == {"received": 0, "stored": 0, "duplicates": 0, "quarantined": 0}


def test_sent_time_in_seconds_and_milliseconds(client, engine):
    post(
        client,
        [
            record(2, userid="secs", sent_time=1_700_000_000),
            record(2, userid="millis", sent_time=1_700_000_000_123),
            record(2, userid="none", sent_time=None),
        ],
    )
    by_user = {e.userid: e for e in events(engine)}
    assert by_user["secs"].occurred_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert by_user["millis"].occurred_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert by_user["none"].occurred_at == by_user["none"].received_at


def test_unknown_fields_and_unknown_sender_are_kept(client, engine):
    rec = record(4, sender=42, future_field={"x": [1, 2]}, app_platform="harmony")
    response = post(client, [rec])
    assert response.json["stored"] == 1
    (event,) = events(engine)
    assert event.sender == 42 and event.app_platform == "harmony"
    assert event.raw["future_field"] == {"x": [1, 2]}


def test_record_without_channelkey_gets_the_authenticated_one(client, engine):
    rec = record(4)
    del rec["channelkey"]
    post(client, [rec], headers=basic_auth(OTHER_CHANNEL, OTHER_SECRET))
    assert [e.channelkey for e in events(engine)] == [OTHER_CHANNEL]


def test_same_batch_posted_three_times_is_stored_once(client, engine):
    batch = nine_type_batch(100)
    answers = [post(client, batch).json for _ in range(3)]

    assert answers[0] == {"received": 100, "stored": 100, "duplicates": 0, "quarantined": 0}
    assert (
        answers[1]
        == answers[2]
        == {"received": 100, "stored": 0, "duplicates": 100, "quarantined": 0}
    )
    assert len(events(engine)) == 100
    assert all(t.event_count == 1 for t in targets(engine).values())


def test_record_repeated_inside_one_batch_is_a_duplicate(client, engine):
    response = post(client, [record(4), record(4)])
    assert response.json == {"received": 2, "stored": 1, "duplicates": 1, "quarantined": 0}
    assert len(events(engine)) == 1
    assert targets(engine)[(MSGID, "user1", 1)].event_count == 1


def test_out_of_order_arrival_ends_at_the_right_status(client, engine):
    # clicked arrives before delivered, before submitted, before valid; each alone.
    for type_ in (6, 4, 2, 0):
        assert post(client, [record(type_, sent_time=SENT_TIME + type_)]).status_code == 200

    target = targets(engine)[(MSGID, "user1", 1)]
    assert STATUS_BY_TYPE[target.type] == "clicked"
    assert target.reached_at == datetime.fromtimestamp(SENT_TIME + 6, UTC)
    assert target.event_count == 4
    assert len(events(engine)) == 4


@pytest.mark.parametrize(
    ("arrivals", "expected"),
    [
        pytest.param([5, 4], "delivered", id="success-after-failure"),
        pytest.param([4, 5], "delivered", id="failure-after-success"),
        pytest.param([6, 8], "withdraw_failed", id="later-stage-failure-wins"),
        pytest.param([7, 6, 4], "withdrawn", id="withdrawal-beats-late-click"),
        pytest.param([3, 1], "submit_failed", id="earlier-stage-never-wins"),
    ],
)
def test_stage_rule_decides_not_arrival(client, engine, arrivals, expected):
    for n, type_ in enumerate(arrivals):
        post(client, [record(type_, sent_time=SENT_TIME + n)])
    target = targets(engine)[(MSGID, "user1", 1)]
    assert STATUS_BY_TYPE[target.type] == expected


def test_out_of_order_inside_one_batch(client, engine):
    post(client, [record(6), record(2), record(4), record(6, sent_time=SENT_TIME - 5)])
    target = targets(engine)[(MSGID, "user1", 1)]
    assert STATUS_BY_TYPE[target.type] == "clicked"
    # The same status seen twice: it was reached at the earlier time.
    assert target.reached_at == datetime.fromtimestamp(SENT_TIME - 5, UTC)
    assert target.event_count == 4


def test_late_duplicate_does_not_move_target_back(client, engine):
    post(client, [record(2)])
    post(client, [record(4)])
    post(client, [record(2)])  # retry of an old batch arrives late
    target = targets(engine)[(MSGID, "user1", 1)]
    assert STATUS_BY_TYPE[target.type] == "delivered" and target.event_count == 2


def test_target_without_userid_is_keyed_by_sender_id(client, engine):
    post(
        client,
        [
            record(2, userid="", sender_id="13800000000", sender=5),
            record(5, userid="", sender_id="13800000000", sender=5),
        ],
    )
    target = targets(engine)[(MSGID, "13800000000", 5)]
    assert target.userid is None and STATUS_BY_TYPE[target.type] == "delivery_failed"


def test_records_for_unknown_msgids_are_stored(client, engine):
    post(client, [record(4, msgid="v:1t:1p:1n:never-sent-here")])
    assert [e.msgid for e in events(engine)] == ["v:1t:1p:1n:never-sent-here"]


BAD_RECORDS = [
    ("msgid is missing", {"type": 4, "userid": "u"}),
    ("msgid is not a non-empty string", {"type": 4, "msgid": 12}),
    ("type is missing", {"msgid": MSGID}),
    ("type 9 is not a UMS status type (0-8)", {"type": 9, "msgid": MSGID}),
    ("type is not an integer", {"type": "4", "msgid": MSGID}),
    ("type is not an integer", {"type": True, "msgid": MSGID}),
    (
        f"channelkey '{OTHER_CHANNEL}' is not the authenticated channel '{CHANNEL}'",
        {"type": 4, "msgid": MSGID, "channelkey": OTHER_CHANNEL},
    ),
    ("userid is not a string", {"type": 4, "msgid": MSGID, "userid": 5}),
    ("sender is not an integer", {"type": 4, "msgid": MSGID, "sender": "app"}),
    ("sent_time is not an integer", {"type": 4, "msgid": MSGID, "sent_time": "yesterday"}),
    ("error is not an object", {"type": 5, "msgid": MSGID, "error": "boom"}),
    ("params is not an object", {"type": 5, "msgid": MSGID, "params": [1]}),
    ("not a JSON object but an array", [1, 2]),
    ("not a JSON object but a string", "x"),
    (
        "userid contains a NUL character, which the database cannot store",
        {"type": 4, "msgid": MSGID, "userid": "a\u0000b"},
    ),
]


def test_batch_mixing_good_and_bad_records(client, engine):
    good = nine_type_batch(20)
    bad = [rec for _, rec in BAD_RECORDS]
    response = post(client, good[:10] + bad + good[10:])

    assert response.status_code == 200
    assert response.json == {
        "received": 20 + len(bad),
        "stored": 20,
        "duplicates": 0,
        "quarantined": len(bad),
    }
    assert len(events(engine)) == 20
    kept = quarantined(engine)
    assert [q.reason for q in kept] == [
        f"record {10 + i}: {reason}" for i, (reason, _) in enumerate(BAD_RECORDS)
    ]
    assert [json.loads(q.raw) for q in kept] == bad
    assert all(q.channelkey == CHANNEL for q in kept)


def test_retried_bad_records_are_quarantined_once(client, engine):
    batch = [record(4), {"type": 12, "msgid": MSGID}]
    for _ in range(2):
        assert post(client, batch).json["quarantined"] == 1
    assert len(quarantined(engine)) == 1


def test_lone_surrogate_is_quarantined_not_a_server_error(client, engine):
    body = '[{"type": 4, "msgid": "m", "userid": "\\ud800"}]'
    response = post(client, body)
    assert response.status_code == 200 and response.json["quarantined"] == 1
    assert "surrogate" in quarantined(engine)[0].reason


def test_number_too_large_for_json_is_quarantined_not_a_server_error(client, engine):
    body = '[{"type": 4, "msgid": "m", "userid": "u"}, {"type": 4, "msgid": "m", "x": -1e400}]'
    response = post(client, body)
    assert response.status_code == 200
    assert response.json == {"received": 2, "stored": 1, "duplicates": 0, "quarantined": 1}
    assert quarantined(engine)[0].reason == "record 1: x contains a number too large to store"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        pytest.param(b"{not json", "body is not JSON", id="broken"),
        pytest.param(b"\xff\xfe\x00garbage", "body is not JSON", id="binary"),
        pytest.param(
            b'[{"type": 4, "msgid": "m", "sent_time": NaN}]', "NaN is not valid JSON", id="nan"
        ),
        pytest.param(b"42", "neither a JSON array nor an object", id="number"),
        pytest.param(b'"text"', "neither a JSON array nor an object", id="string"),
    ],
)
def test_unusable_body_is_400_and_kept(client, engine, body, reason):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json["error"] == "bad_request" and reason in response.json["message"]
    (kept,) = quarantined(engine)
    assert reason in kept.reason and kept.channelkey == CHANNEL
    assert kept.raw == body.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    assert events(engine) == []


def test_oversized_body_is_413_and_nothing_stored(env, engine):
    from receiver import create_app

    app = create_app({**env, "MAX_BODY_BYTES": "2048"})
    response = post(app.test_client(), nine_type_batch(100))
    assert response.status_code == 413
    assert response.json["error"] == "request_entity_too_large"
    assert events(engine) == [] and quarantined(engine) == []
    app.extensions["umstrack.engine"].dispose()


def test_default_size_limit_is_one_mebibyte(client, engine):
    padding = "x" * (1 << 20)
    assert post(client, [record(4, pad=padding)]).status_code == 413
    assert post(client, [record(4, pad=padding[:1000])]).status_code == 200


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_unknown_route_answers_in_the_error_shape(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert set(response.json) == {"error", "message"} and response.json["error"] == "not_found"
