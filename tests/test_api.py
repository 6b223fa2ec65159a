"""Read API: summaries, timelines, targets and message lists, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from receiver import create_app
from receiver.intake import record_batch
from receiver.models import Message
from sender.ums.protocol import STATUSES
from tests.helpers import (
    API_TOKEN,
    CHANNEL,
    MSGID,
    SENT_TIME,
    api_get,
    bearer,
    post,
    record,
    walk,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _at(seconds: int) -> str:
    return datetime.fromtimestamp(SENT_TIME + seconds, UTC).isoformat()


def _lifecycles() -> list[dict]:
    """Three targets' events, in the order a sloppy network might bring them."""
    return [
        # user1 on the APP channel: validated by UMS itself (sender 0), then the app.
        record(4, userid="user1", sender=1, sent_time=SENT_TIME + 30),
        record(6, userid="user1", sender=1, sent_time=SENT_TIME + 40),
        record(0, userid="user1", sender=0, sent_time=SENT_TIME + 10),
        record(2, userid="user1", sender=1, sent_time=SENT_TIME + 20),
        # user2: invalid target.
        record(1, userid="user2", sender=0, sent_time=SENT_TIME + 11),
        # phone 13800000000 on SMS (custom channel ids: no userid).
        record(5, userid="", sender=5, sender_id="13800000000", sent_time=SENT_TIME + 50),
        record(2, userid="", sender=5, sender_id="13800000000", sent_time=SENT_TIME + 21),
        record(0, userid="", sender=0, sender_id="13800000000", sent_time=SENT_TIME + 12),
    ]


def test_out_of_order_and_repeated_events_read_right(client):
    batch = _lifecycles()
    assert post(client, batch[:3]).status_code == 200
    assert post(client, batch[3:][::-1]).status_code == 200
    assert post(client, batch[::-1]).json["duplicates"] == len(batch)  # a provider retry

    summary = api_get(client, f"/api/messages/{MSGID}").json
    assert summary["msgid"] == MSGID and summary["provider"] == "ums"
    assert summary["channelkey"] == CHANNEL and summary["params"] == {"order_id": "123"}
    assert summary["sent_at"] is None and summary["send"] is None  # not sent through us
    assert summary["counts"] == {
        **dict.fromkeys(STATUSES, 0),
        "target_valid": 2,
        "target_invalid": 1,
        "submitted": 2,
        "delivered": 1,
        "delivery_failed": 1,
        "clicked": 1,
    }
    assert summary["targets"] == {
        "total": 3,
        "by_status": {
            **dict.fromkeys(STATUSES, 0),
            "clicked": 1,
            "target_invalid": 1,
            "delivery_failed": 1,
        },
    }
    assert summary["first_event_at"] == _at(10) and summary["last_event_at"] == _at(50)

    timeline = api_get(client, f"/api/messages/{MSGID}/timeline").json
    assert timeline["next_cursor"] is None
    events = timeline["events"]
    assert [(e["occurred_at"], e["status"]) for e in events] == [
        (_at(10), "target_valid"),
        (_at(11), "target_invalid"),
        (_at(12), "target_valid"),
        (_at(20), "submitted"),
        (_at(21), "submitted"),
        (_at(30), "delivered"),
        (_at(40), "clicked"),
        (_at(50), "delivery_failed"),
    ]
    delivered, failed = events[5], events[7]
    assert delivered["channel"] == "app" and delivered["userid"] == "user1"
    assert (delivered["app_platform"], delivered["app_vendor"]) == ("android", "huawei")
    assert delivered["error"] is None and delivered["params"] == {"order_id": "123"}
    assert failed["channel"] == "sms" and failed["userid"] is None
    assert failed["sender_id"] == "13800000000" and failed["type"] == 5
    assert failed["error"] == {"code": 3005, "message": "failure of type 5"}
    assert events[0]["channel"] == "ums"
    assert all(datetime.fromisoformat(e["received_at"]).tzinfo for e in events)

    targets = api_get(client, f"/api/messages/{MSGID}/targets").json["targets"]
    assert [(t["recipient"], t["channel"], t["status"], t["event_count"]) for t in targets] == [
        ("13800000000", "sms", "delivery_failed", 2),
        ("user1", "app", "clicked", 3),
        ("user2", "ums", "target_invalid", 1),
    ]
    assert targets[1]["reached_at"] == _at(40)


def test_events_of_one_second_and_one_batch_read_in_lifecycle_order(client):
    # UMS times are whole seconds: one second can hold a target's whole lifecycle.
    post(client, [record(t, userid="u", sender=1, sent_time=SENT_TIME) for t in (6, 4, 2, 0)])
    events = api_get(client, f"/api/messages/{MSGID}/timeline", limit=2).json
    rest = api_get(client, f"/api/messages/{MSGID}/timeline", cursor=events["next_cursor"]).json
    assert [e["status"] for e in events["events"] + rest["events"]] == [
        "target_valid",
        "submitted",
        "delivered",
        "clicked",
    ]


def test_targets_filter_by_status_and_page(client):
    batch = [record(4 if i % 3 else 5, userid=f"u{i:03d}") for i in range(250)]
    post(client, batch[:100])
    post(client, batch[100:200])
    post(client, batch[200:])

    failed = walk(client, f"/api/messages/{MSGID}/targets", "targets", status="delivery_failed")
    assert [t["recipient"] for t in failed] == [f"u{i:03d}" for i in range(0, 250, 3)]
    assert {t["status"] for t in failed} == {"delivery_failed"}
    everyone = walk(client, f"/api/messages/{MSGID}/targets", "targets", limit=7)
    assert [t["recipient"] for t in everyone] == [f"u{i:03d}" for i in range(250)]
    none = api_get(client, f"/api/messages/{MSGID}/targets", status="clicked").json
    assert none == {"msgid": MSGID, "targets": [], "next_cursor": None}


def test_timeline_pages_see_every_event_once_while_events_keep_arriving(client):
    # 2,500 events, seven to a second so that pages end inside runs of equal times.
    users = [f"user{i:04d}" for i in range(625)]
    first = [
        record(t, userid=u, sender=0 if t == 0 else 1, sent_time=SENT_TIME + n // 7)
        for n, (u, t) in enumerate((u, t) for t in (0, 2, 4, 6) for u in users)
    ]
    for start in range(0, len(first), 100):
        assert post(client, first[start : start + 100]).json["stored"] == 100

    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = api_get(client, f"/api/messages/{MSGID}/timeline", **query).json
        seen += page["events"]
        pages += 1
        # Between pages: a new event after everything, one inside the range read
        # already, and a provider retry of an old one.
        late = SENT_TIME + 10_000 + pages
        post(
            client,
            [
                record(7, userid=f"late{pages}", sent_time=late),
                record(8, userid=f"early{pages}", sent_time=SENT_TIME),
                first[pages],
            ],
        )
        cursor = page["next_cursor"]
        if cursor is None:
            break

    keys = [(e["userid"], e["type"]) for e in seen]
    assert len(keys) == len(set(keys)), "an event was served twice"
    assert {(r["userid"], r["type"]) for r in first} <= set(keys), "an event was skipped"
    late_seen = [e for e in seen if e["userid"].startswith("late")]
    assert len(late_seen) == pages - 1  # every later event but the last page's own
    occurred = [e["occurred_at"] for e in seen]
    assert occurred == sorted(occurred)
    assert pages == 26


def _message_at(session, when, *, msgid, params=None, sendno=None, status=4):
    result = record_batch(
        session=session,
        channelkey=CHANNEL,
        records=[record(status, msgid=msgid, params=params or {})],
        received_at=when,
    )
    assert result.stored == 1
    if sendno:
        session.get(Message, msgid).sendno = sendno


@pytest.fixture
def six_messages(engine):
    with Session(engine) as session:
        _message_at(session, T0, msgid="m0", params={"order_id": 123, "shop": "a"})
        _message_at(session, T0 + timedelta(hours=1), msgid="m1", params={"order_id": "123"})
        _message_at(
            session,
            T0 + timedelta(hours=2),
            msgid="m2",
            params={"order_id": "124"},
            status=5,
            sendno="batch-7",
        )
        _message_at(session, T0 + timedelta(hours=3), msgid="m3", status=6, sendno="batch-7")
        _message_at(session, T0 + timedelta(hours=4), msgid="m4", params={"shop": "a"}, status=5)
        _message_at(session, T0 + timedelta(hours=5), msgid="m5", status=1)
        session.commit()


def _listed(client, **filters) -> list[str]:
    return [m["msgid"] for m in walk(client, "/api/messages", "messages", **filters)]


@pytest.mark.usefixtures("six_messages")
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["m5", "m4", "m3", "m2", "m1", "m0"]),
        ({"limit": 1}, ["m5", "m4", "m3", "m2", "m1", "m0"]),
        ({"status": "delivery_failed"}, ["m4", "m2"]),
        ({"status": "target_invalid"}, ["m5"]),
        ({"status": "withdrawn"}, []),
        ({"sendno": "batch-7"}, ["m3", "m2"]),
        ({"since": T0.isoformat()}, ["m5", "m4", "m3", "m2", "m1", "m0"]),
        ({"since": (T0 + timedelta(hours=2)).isoformat()}, ["m5", "m4", "m3", "m2"]),
        ({"until": (T0 + timedelta(hours=2)).isoformat()}, ["m1", "m0"]),
        ({"since": "2026-11-01T02:00:00", "until": "2026-11-01T04:00:00"}, ["m3", "m2"]),
        ({"since": "2026-11-01T10:00:00+08:00"}, ["m5", "m4", "m3", "m2"]),
        ({"since": "2026-11-01T10:00:00 08:00"}, ["m5", "m4", "m3", "m2"]),  # unencoded +
        ({"param.order_id": "123"}, ["m1", "m0"]),  # the string and the number
        ({"param.order_id": "124"}, ["m2"]),
        ({"param.shop": "a"}, ["m4", "m0"]),
        ({"param.shop": "a", "param.order_id": "123"}, ["m0"]),
        ({"param.shop": "b"}, []),
        ({"status": "delivery_failed", "param.shop": "a", "limit": 1}, ["m4"]),
    ],
    ids=lambda value: (
        "-".join(f"{k}={v}" for k, v in value.items()) or "none"
        if isinstance(value, dict)
        else None
    ),
)
def test_message_list_filters(client, filters, expected):
    assert _listed(client, **filters) == expected


@pytest.mark.usefixtures("six_messages")
def test_message_list_items_are_summaries(client):
    page = api_get(client, "/api/messages", limit=2).json
    assert [m["msgid"] for m in page["messages"]] == ["m5", "m4"]
    assert page["messages"][0]["targets"]["by_status"]["target_invalid"] == 1
    assert page["messages"][1]["counts"]["delivery_failed"] == 1
    assert page["messages"][1]["params"] == {"shop": "a"}
    assert page["next_cursor"]


def test_summary_shows_send_facts(client, engine):
    sent_at = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    with Session(engine) as session:
        session.add(
            Message(
                msgid=MSGID,
                provider="ums",
                channelkey=CHANNEL,
                sendno="s-1",
                params={"order_id": "9"},
                request={"aud_userid": ["user1"]},
                sent_at=sent_at,
                send_code=0,
                send_message="success",
                send_state="sent",
                created_at=sent_at,
            )
        )
        session.commit()
    post(client, [record(4)])

    summary = api_get(client, f"/api/messages/{MSGID}").json
    assert summary["sendno"] == "s-1" and summary["params"] == {"order_id": "9"}
    assert summary["sent_at"] == sent_at.isoformat()
    assert summary["send"] == {"outcome": "sent", "code": 0, "message": "success"}
    assert summary["counts"]["delivered"] == 1


@pytest.mark.parametrize("path", ["", "/timeline", "/targets"])
def test_unknown_message_is_404(client, path):
    post(client, [record(4)])
    response = api_get(client, f"/api/messages/v:1t:1603707455p:27133n:3{path}")
    assert response.status_code == 404
    assert response.json["error"] == "not_found"
    assert "v:1t:1603707455p:27133n:3" in response.json["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/messages",
        f"/api/messages/{MSGID}",
        f"/api/messages/{MSGID}/timeline",
        f"/api/messages/{MSGID}/targets",
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Basic {API_TOKEN}", "Bearer", f"Bearer {API_TOKEN}x"],
    ids=["none", "wrong", "not-bearer", "empty", "longer"],
)
def test_read_api_needs_a_token(client, path, authorization):
    post(client, [record(4)])
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "user1" not in response.get_data(as_text=True)


def test_every_configured_token_reads(client):
    post(client, [record(4)])
    for token in ("other-token", API_TOKEN):
        assert client.get(f"/api/messages/{MSGID}", headers=bearer(token)).status_code == 200


def test_no_configured_token_closes_the_api(env):
    app = create_app({**env, "API_TOKENS": ""})
    try:
        response = app.test_client().get(f"/api/messages/{MSGID}", headers=bearer())
    finally:
        app.extensions["umstrack.engine"].dispose()
    assert response.status_code == 401
    assert "API_TOKENS" in response.json["message"]


@pytest.mark.parametrize(
    ("path", "query", "parameter"),
    [
        ("/api/messages", {"since": "yesterday"}, "since"),
        ("/api/messages", {"until": "2026-13-01"}, "until"),
        ("/api/messages", {"limit": "0"}, "limit"),
        ("/api/messages", {"limit": "1001"}, "limit"),
        ("/api/messages", {"limit": "ten"}, "limit"),
        ("/api/messages", {"limit": "-5"}, "limit"),
        ("/api/messages", {"limit": "²"}, "limit"),
        ("/api/messages", {"status": "read"}, "status"),
        ("/api/messages", {"cursor": "not-a-cursor!"}, "cursor"),
        ("/api/messages", {"cursor": "WyJ0IiwxXQ"}, "cursor"),  # ["t",1]: wrong list
        (f"/api/messages/{MSGID}/timeline", {"limit": "1000000"}, "limit"),
        (f"/api/messages/{MSGID}/timeline", {"cursor": "eyJ4IjoxfQ"}, "cursor"),  # {"x":1}
        # ["t","x","y",1,"z"]: the right list, a damaged position
        (f"/api/messages/{MSGID}/timeline", {"cursor": "WyJ0IiwieCIsInkiLDEsInoiXQ"}, "cursor"),
        (f"/api/messages/{MSGID}/targets", {"status": "Delivered"}, "status"),
        (f"/api/messages/{MSGID}/targets", {"cursor": "%%%"}, "cursor"),
        (f"/api/messages/{MSGID}/targets", {"limit": ""}, "limit"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client, path, query, parameter):
    post(client, [record(4)])
    response = api_get(client, path, **query)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_parameter"
    assert response.json["message"].startswith(f"{parameter}: ")


def test_cursor_from_one_list_is_refused_by_another(client):
    post(client, [record(4, userid=f"u{i}") for i in range(3)])
    cursor = api_get(client, f"/api/messages/{MSGID}/timeline", limit=1).json["next_cursor"]
    response = api_get(client, f"/api/messages/{MSGID}/targets", cursor=cursor)
    assert response.status_code == 400 and response.json["message"].startswith("cursor: ")


@pytest.mark.parametrize(
    "msgid", ["v:1t:1603707455p:27133n:2", "plain", "with space", "a%b", "x;y=1"]
)
def test_any_msgid_works_in_the_path(client, msgid):
    post(client, [record(4, msgid=msgid)])
    from urllib.parse import quote

    response = api_get(client, f"/api/messages/{quote(msgid, safe=':')}")
    assert response.status_code == 200 and response.json["msgid"] == msgid
    timeline = api_get(client, f"/api/messages/{quote(msgid, safe=':')}/timeline").json
    assert len(timeline["events"]) == 1 and timeline["msgid"] == msgid


def test_wrong_method_is_405_with_allow(client):
    response = client.delete(f"/api/messages/{MSGID}", headers=bearer())
    assert response.status_code == 405 and response.json["error"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
