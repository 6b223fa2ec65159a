"""Channel ownership (issue 11): a message belongs to the channel that sent it through
this service or, for a msgid never sent here, to the first channel whose authenticated
callback named it. Another configured channel can neither add to it, nor withdraw its
targets, nor change its params or send facts: its records are quarantined. One test per
way channel B could reach channel A's data; every test runs on every backend."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from receiver.db import write_transaction
from receiver.models import Message
from receiver.store import record_send
from sender.ums.protocol import STATUS_BY_TYPE
from tests.helpers import (
    CHANNEL,
    MSGID,
    OTHER_CHANNEL,
    OTHER_SECRET,
    SENT_TIME,
    api_get,
    basic_auth,
    events,
    post,
    quarantined,
    record,
    targets,
)

B_AUTH = basic_auth(OTHER_CHANNEL, OTHER_SECRET)
A_PARAMS = {"order_id": "A-1"}
B_PARAMS = {"order_id": "B-1"}
OWNED_ELSEWHERE = "belongs to another channel"


def as_a(type_: int, **fields) -> dict:
    return record(type_, **{"params": A_PARAMS, **fields})


def as_b(type_: int, **fields) -> dict:
    return record(type_, **{"channelkey": OTHER_CHANNEL, "params": B_PARAMS, **fields})


def post_b(client, records: list[dict]):
    return post(client, records, headers=B_AUTH)


def message(engine, msgid: str = MSGID) -> Message | None:
    with Session(engine) as session:
        return session.get(Message, msgid)


def status_of(engine, recipient: str, msgid: str = MSGID, sender: int = 1) -> str:
    return STATUS_BY_TYPE[targets(engine)[(msgid, recipient, sender)].type]


def a_sends(engine, msgid: str = MSGID) -> None:
    """Channel A sends ``msgid`` through this service (the sender's record of it)."""
    with write_transaction(engine) as session:
        record_send(
            session,
            msgid=msgid,
            provider="ums",
            channelkey=CHANNEL,
            sendno="a-sendno",
            params=A_PARAMS,
            request={"aud_userid": ["u1"]},
            code=0,
            message="success",
            send_id="s1",
            part=0,
            sent_at=datetime.now(UTC),
            state="sent",
        )


def assert_quarantined_as_another_channels(engine, response, index: int = 0) -> None:
    assert response.status_code == 200
    assert response.json["quarantined"] >= 1
    kept = [q for q in quarantined(engine) if q.reason.startswith(f"record {index}: ")]
    assert len(kept) == 1, [q.reason for q in quarantined(engine)]
    assert OWNED_ELSEWHERE in kept[0].reason, kept[0].reason
    assert kept[0].channelkey == OTHER_CHANNEL


# B's records name B's channel, or name none (UMS may leave channelkey out or empty).
B_CHANNELKEY = pytest.mark.parametrize(
    "b_channelkey",
    [
        pytest.param({"channelkey": OTHER_CHANNEL}, id="named"),
        pytest.param({"channelkey": ""}, id="empty"),
        pytest.param({}, id="absent"),
    ],
)


def _b_record(type_: int, b_channelkey: dict, **fields) -> dict:
    rec = as_b(type_, **fields)
    rec.pop("channelkey")
    return {**rec, **b_channelkey}


@B_CHANNELKEY
def test_b_cannot_withdraw_a_target_of_a(client, engine, b_channelkey):
    post(client, [as_a(2, userid="u1"), as_a(4, userid="u1", sent_time=SENT_TIME + 1)])
    withdraw = _b_record(7, b_channelkey, userid="u1", sent_time=SENT_TIME + 2)

    for _ in range(3):  # UMS retries a batch: quarantined once
        response = post_b(client, [withdraw])
        assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    assert_quarantined_as_another_channels(engine, response)
    assert len(quarantined(engine)) == 1
    assert status_of(engine, "u1") == "delivered"
    assert targets(engine)[(MSGID, "u1", 1)].event_count == 2
    assert [(e.type, e.channelkey) for e in events(engine)] == [(2, CHANNEL), (4, CHANNEL)]


def test_b_withdrawal_in_a_batch_of_its_own_records(client, engine):
    post(client, [as_a(4, userid="u1")])
    response = post_b(
        client,
        [
            as_b(4, msgid="b-message", userid="b1"),
            as_b(7, userid="u1", sent_time=SENT_TIME + 5),
            as_b(4, msgid="b-message", userid="b2"),
        ],
    )
    assert response.json == {"received": 3, "stored": 2, "duplicates": 0, "quarantined": 1}
    assert_quarantined_as_another_channels(engine, response, index=1)
    assert status_of(engine, "u1") == "delivered"
    stored = sorted((e.msgid, e.userid, e.channelkey) for e in events(engine))
    assert stored == [
        ("b-message", "b1", OTHER_CHANNEL),
        ("b-message", "b2", OTHER_CHANNEL),
        (MSGID, "u1", CHANNEL),
    ]
    assert message(engine, "b-message").channelkey == OTHER_CHANNEL


def test_b_cannot_add_targets_or_events_to_a_message_of_a(client, engine):
    post(client, [as_a(4, userid="u1")])
    response = post_b(
        client,
        [
            as_b(0, userid="intruder", sender=0),
            as_b(4, userid="intruder"),
            as_b(6, userid="u1", sent_time=SENT_TIME + 9),
            as_b(5, userid="u1", sent_time=SENT_TIME + 9),
        ],
    )
    assert response.json == {"received": 4, "stored": 0, "duplicates": 0, "quarantined": 4}
    assert all(OWNED_ELSEWHERE in q.reason for q in quarantined(engine))
    assert list(targets(engine)) == [(MSGID, "u1", 1)]
    assert status_of(engine, "u1") == "delivered"
    assert [e.userid for e in events(engine)] == ["u1"]


def test_a_send_takes_a_msgid_that_b_claimed_first(client, engine):
    # B's callback names the msgid first; then A records its send of it.
    assert post_b(client, [as_b(2, userid="u1")]).json["stored"] == 1
    assert message(engine).channelkey == OTHER_CHANNEL

    a_sends(engine)
    msg = message(engine)
    assert (msg.channelkey, msg.params, msg.sendno) == (CHANNEL, A_PARAMS, "a-sendno")
    assert (msg.send_id, msg.send_code, msg.send_message) == ("s1", 0, "success")

    later = post_b(client, [as_b(7, userid="u1", sent_time=SENT_TIME + 3)])
    assert later.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    assert_quarantined_as_another_channels(engine, later)
    assert post(client, [as_a(4, userid="u1", sent_time=SENT_TIME + 2)]).json["stored"] == 1
    assert status_of(engine, "u1") == "delivered"
    msg = message(engine)
    assert (msg.channelkey, msg.params, msg.sendno) == (CHANNEL, A_PARAMS, "a-sendno")


def test_a_send_recorded_before_any_callback_owns_the_msgid(client, engine):
    a_sends(engine)
    response = post_b(client, [as_b(4, userid="u1")])
    assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    assert_quarantined_as_another_channels(engine, response)
    assert events(engine) == [] and targets(engine) == {}
    assert post(client, [as_a(4, userid="u1")]).json["stored"] == 1
    assert message(engine).params == A_PARAMS


def test_b_cannot_overwrite_params_of_a_message_a_callbacks_created(client, engine):
    post(client, [as_a(4, userid="u1")])
    response = post_b(client, [as_b(4, userid="u2", params={"order_id": "B-1", "x": 1})])
    assert_quarantined_as_another_channels(engine, response)
    assert message(engine).params == A_PARAMS and message(engine).channelkey == CHANNEL

    listed = api_get(client, "/api/messages", **{"param.order_id": "B-1"}).json
    assert listed["messages"] == []
    listed = api_get(client, "/api/messages", **{"param.order_id": "A-1"}).json
    assert [m["msgid"] for m in listed["messages"]] == [MSGID]


def test_first_channel_to_name_an_unknown_msgid_owns_it(client, engine):
    assert post_b(client, [as_b(4, userid="b1")]).json["stored"] == 1
    response = post(client, [as_a(7, userid="b1", sent_time=SENT_TIME + 1)])
    assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    (kept,) = quarantined(engine)
    assert OWNED_ELSEWHERE in kept.reason and kept.channelkey == CHANNEL
    assert status_of(engine, "b1") == "delivered"
    assert (message(engine).channelkey, message(engine).params) == (OTHER_CHANNEL, B_PARAMS)


def test_callbacks_of_the_owner_never_change_params_or_send_facts(client, engine):
    a_sends(engine)
    response = post(client, [as_a(4, userid="u1", params={"order_id": "changed"})])
    assert response.json["stored"] == 1  # the owner's callback is stored as an event
    msg = message(engine)
    assert (msg.params, msg.sendno, msg.send_id) == (A_PARAMS, "a-sendno", "s1")
    assert (msg.send_code, msg.send_message, msg.channelkey) == (0, "success", CHANNEL)
    (event,) = events(engine)
    assert event.params == {"order_id": "changed"}


def test_params_come_from_the_first_callback_of_a_message(client, engine):
    post(client, [as_a(2, userid="u1")])
    post(client, [as_a(4, userid="u1", sent_time=SENT_TIME + 1, params={"order_id": "later"})])
    assert message(engine).params == A_PARAMS


@pytest.mark.parametrize("known", [True, False], ids=["a-msgid", "new-msgid"])
def test_record_naming_a_posted_with_b_credentials_is_quarantined(client, engine, known):
    if known:
        post(client, [as_a(4, userid="u1")])
    forged = as_a(7, userid="u1", sent_time=SENT_TIME + 1)  # channelkey: A's
    response = post_b(client, [forged])
    assert response.status_code == 200
    assert response.json == {"received": 1, "stored": 0, "duplicates": 0, "quarantined": 1}
    (kept,) = quarantined(engine)
    assert kept.reason.startswith("record 0: channelkey") and kept.channelkey == OTHER_CHANNEL
    assert all(e.type != 7 for e in events(engine))
    if known:
        assert status_of(engine, "u1") == "delivered"
    else:  # a quarantined record claims nothing: the msgid is still free for A
        assert message(engine) is None and events(engine) == []
        assert post(client, [as_a(4, userid="u1")]).json["stored"] == 1
        assert message(engine).channelkey == CHANNEL


def test_read_api_shows_only_a_data_after_b_attempts(client, engine):
    a_records = [
        as_a(0, userid="u1", sender=0),
        as_a(2, userid="u1", sent_time=SENT_TIME + 1),
        as_a(4, userid="u1", sent_time=SENT_TIME + 2),
        as_a(1, userid="u2", sender=0, sent_time=SENT_TIME + 1),
    ]
    assert post(client, a_records).json["stored"] == 4
    attempts = [
        as_b(7, userid="u1", sent_time=SENT_TIME + 3),
        as_b(6, userid="u1", sent_time=SENT_TIME + 3),
        as_b(0, userid="u2", sender=0, sent_time=SENT_TIME + 3),
        as_b(4, userid="intruder", sent_time=SENT_TIME + 3),
        {**as_b(7, userid="u1", sent_time=SENT_TIME + 4), "channelkey": ""},
        {**as_b(7, userid="u1", sent_time=SENT_TIME + 4), "channelkey": CHANNEL},
    ]
    for attempt in attempts:  # one at a time, and all together
        assert post_b(client, [attempt]).json["stored"] == 0
    assert post_b(client, attempts).json["stored"] == 0

    summary = api_get(client, f"/api/messages/{MSGID}").json
    assert (summary["channelkey"], summary["params"]) == (CHANNEL, A_PARAMS)
    assert {k: v for k, v in summary["counts"].items() if v} == {
        "target_valid": 1,
        "target_invalid": 1,
        "submitted": 1,
        "delivered": 1,
    }
    assert summary["targets"]["total"] == 2
    timeline = api_get(client, f"/api/messages/{MSGID}/timeline").json["events"]
    assert [(e["userid"], e["status"]) for e in timeline] == [
        ("u1", "target_valid"),
        ("u2", "target_invalid"),
        ("u1", "submitted"),
        ("u1", "delivered"),
    ]
    assert all(e["params"] == A_PARAMS for e in timeline)
    listed = api_get(client, f"/api/messages/{MSGID}/targets").json["targets"]
    assert [(t["recipient"], t["status"]) for t in listed] == [
        ("u1", "delivered"),
        ("u2", "target_invalid"),
    ]
    assert api_get(client, "/api/messages", **{"param.order_id": "B-1"}).json["messages"] == []
    assert {q.channelkey for q in quarantined(engine)} == {OTHER_CHANNEL}


def test_simultaneous_first_callbacks_give_each_msgid_one_owner(app, engine):
    """A and B name the same new msgids at the same moment: each msgid gets one owner,
    whose record is stored; the other channel's record is quarantined."""
    msgids = [f"race-{i:02d}" for i in range(20)]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(channelkey: str, headers: dict) -> None:
        try:
            client = app.test_client()
            barrier.wait(timeout=30)
            for msgid in msgids:
                rec = record(4, msgid=msgid, userid=channelkey[:6], channelkey=channelkey)
                assert post(client, [rec], headers=headers).status_code == 200
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=run, args=(CHANNEL, basic_auth())),
        threading.Thread(target=run, args=(OTHER_CHANNEL, B_AUTH)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []

    stored = events(engine)
    kept = quarantined(engine)
    assert len(stored) == len(msgids) and len(kept) == len(msgids)
    for msgid in msgids:
        owner = message(engine, msgid).channelkey
        assert [e.channelkey for e in stored if e.msgid == msgid] == [owner]
        (other,) = [q for q in kept if f'"{msgid}"' in q.raw]
        assert other.channelkey != owner and OWNED_ELSEWHERE in other.reason
