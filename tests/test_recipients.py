"""A recipient's history: its events across all messages, by userid or sender_id."""

from __future__ import annotations

from tests.helpers import SENT_TIME, api_get, post, record, walk

M1, M2, M3 = "v:1t:1700000001p:1n:1", "v:1t:1700000002p:2n:1", "v:1t:1700000003p:3n:1"
PHONE = "13800000000"


def _history(client, recipient: str, **params) -> list[dict]:
    return walk(client, f"/api/recipients/{recipient}/events", "events", **params)


def _three_messages(client) -> None:
    records = [
        record(2, msgid=M1, userid="alice", sent_time=SENT_TIME + 1),
        record(4, msgid=M1, userid="alice", sent_time=SENT_TIME + 5),
        record(4, msgid=M2, userid="alice", sent_time=SENT_TIME + 3),
        record(6, msgid=M3, userid="alice", sent_time=SENT_TIME + 9),
        record(4, msgid=M2, userid="bob", sent_time=SENT_TIME + 4),
        # SMS records naming the phone number: by sender_id, with and without a userid.
        record(2, msgid=M1, userid="carol", sender=5, sender_id=PHONE, sent_time=SENT_TIME + 2),
        record(5, msgid=M2, userid="dave", sender=5, sender_id=PHONE, sent_time=SENT_TIME + 7),
        record(4, msgid=M3, userid=PHONE, sender=5, sender_id=PHONE, sent_time=SENT_TIME + 8),
    ]
    assert post(client, records).json["stored"] == len(records)


def test_history_by_userid_across_messages_newest_first(client):
    _three_messages(client)
    response = api_get(client, "/api/recipients/alice/events")
    assert response.status_code == 200
    page = response.json
    assert page["recipient"] == "alice"
    assert page["next_cursor"] is None
    seen = [(e["msgid"], e["status"]) for e in page["events"]]
    assert seen == [(M3, "clicked"), (M1, "delivered"), (M2, "delivered"), (M1, "submitted")]
    assert all(e["userid"] == "alice" for e in page["events"])
    # Each event is the timeline's event, plus its msgid.
    timeline = api_get(client, f"/api/messages/{M2}/timeline").json["events"]
    alice_m2 = next(e for e in page["events"] if e["msgid"] == M2)
    assert {k: v for k, v in alice_m2.items() if k != "msgid"} == next(
        e for e in timeline if e["userid"] == "alice"
    )


def test_history_by_sender_id_across_messages_each_event_once(client):
    _three_messages(client)
    events = _history(client, PHONE, limit=1)
    # The M3 record has the phone number as userid and as sender_id: listed once.
    assert [(e["msgid"], e["userid"]) for e in events] == [
        (M3, PHONE),
        (M2, "dave"),
        (M1, "carol"),
    ]
    assert [e["status"] for e in events] == ["delivered", "delivery_failed", "submitted"]
    assert _history(client, "sid-alice-1", limit=2) == _history(client, "alice", limit=3)


def test_history_pages_see_every_event_once_while_events_keep_arriving(client):
    # 300 events over three messages, three to a second so pages end inside equal times.
    first = [
        record((2, 4, 6)[n % 3], msgid=(M1, M2, M3)[n // 100], userid="erin", sent_time=t)
        for n in range(300)
        for t in [SENT_TIME + n % 100 // 3]
    ]
    for start in range(0, len(first), 100):
        assert post(client, first[start : start + 100]).json["stored"] == 100
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 25, **({"cursor": cursor} if cursor else {})}
        response = api_get(client, "/api/recipients/erin/events", **query)
        assert response.status_code == 200, response.json
        seen += response.json["events"]
        pages += 1
        # Between pages: one newer than everything (above the pages read already),
        # one older than everything (still ahead), and a provider retry of an old one.
        post(
            client,
            [
                record(7, msgid=f"late{pages}", userid="erin", sent_time=SENT_TIME + 10_000),
                record(2, msgid=f"early{pages}", userid="erin", sent_time=SENT_TIME - 10_000),
                first[pages],
            ],
        )
        cursor = response.json["next_cursor"]
        if cursor is None:
            break
    keys = [(e["msgid"], e["type"], e["occurred_at"]) for e in seen]
    assert len(keys) == len(set(keys)), "an event was served twice"
    assert len({(r["msgid"], r["type"], r["sent_time"]) for r in first}) == 300
    assert len([e for e in seen if e["msgid"] in (M1, M2, M3)]) == 300, "an event was skipped"
    assert not [e for e in seen if e["msgid"].startswith("late")]
    assert len([e for e in seen if e["msgid"].startswith("early")]) == pages - 1
    order = [(e["occurred_at"], e["received_at"]) for e in seen]
    assert order == sorted(order, reverse=True)
    assert pages >= 12


def test_unknown_recipient_has_an_empty_history(client):
    _three_messages(client)
    for recipient in ("nobody", "user\x00", "sid-"):
        response = api_get(client, f"/api/recipients/{recipient}/events")
        assert response.status_code == 200
        assert response.json == {"recipient": recipient, "events": [], "next_cursor": None}


def test_history_needs_a_token(client):
    _three_messages(client)
    response = client.get("/api/recipients/alice/events")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/api/recipients/alice/events", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401


def test_history_refuses_bad_parameters(client):
    _three_messages(client)
    timeline_cursor = api_get(client, f"/api/messages/{M1}/timeline", limit=1).json["next_cursor"]
    for query, parameter in (
        ({"cursor": timeline_cursor}, "cursor"),
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"status": "delivered"}, "status"),
    ):
        response = api_get(client, "/api/recipients/alice/events", **query)
        assert response.status_code == 400, query
        assert response.json["message"].startswith(f"{parameter}:"), response.json
