"""Each target keeps every stage's outcome; the summary is a funnel (per stage and per
channel), with the top errors and stage timings; the targets list filters by what a
target reached or never reached, by channel and by error code."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import MSGID, SENT_TIME, api_get, bearer, post, record


def _at(type_: int, user: str, sender: int, seconds: int) -> dict[str, Any]:
    return record(type_, userid=user, sender=sender, sent_time=SENT_TIME + seconds)


# Six recipients. UMS itself (sender 0) reports validation; channels the rest.
HISTORY = [
    # u1 on app: valid, submitted, delivered after 10 s, clicked.
    _at(0, "u1", 0, 0), _at(2, "u1", 1, 1), _at(4, "u1", 1, 10), _at(6, "u1", 1, 40),
    # u2 on app: delivery failed.
    _at(0, "u2", 0, 0), _at(2, "u2", 1, 1), _at(5, "u2", 1, 5),
    # u3 on sms: submission failed.
    _at(0, "u3", 0, 0), _at(3, "u3", 5, 2),
    # u4: invalid, never handed to a channel.
    _at(1, "u4", 0, 0),
    # u5 on sms: delivered after 20 s, then withdrawn.
    _at(0, "u5", 0, 0), _at(2, "u5", 5, 1), _at(4, "u5", 5, 20), _at(7, "u5", 5, 60),
    # u6 on app: a failed delivery, then delivered after 30 s (arriving out of order).
    _at(4, "u6", 1, 30), _at(2, "u6", 1, 1), _at(5, "u6", 1, 3),
]  # fmt: skip


@pytest.fixture
def stored(client) -> None:
    # In three batches, the later ones first: the result does not depend on the order.
    for batch in (HISTORY[12:], HISTORY[6:12], HISTORY[:6]):
        assert post(client, batch).status_code == 200


def _users(client, **filters: Any) -> list[str]:
    response = api_get(client, f"/api/messages/{MSGID}/targets", **filters)
    assert response.status_code == 200, response.json
    return sorted(t["userid"] for t in response.json["targets"])


def test_the_summary_is_a_funnel_per_stage_and_per_channel(client, stored):
    summary = api_get(client, f"/api/messages/{MSGID}").json
    funnel = summary["funnel"]

    assert funnel["total"] == summary["targets"]["total"] == 6
    assert funnel["stages"] == {
        # Every target on a channel was valid; u4 was not.
        "validation": {"ok": 5, "failed": 1, "pending": 0},
        "submission": {"ok": 4, "failed": 1, "pending": 1},
        # u6 failed, then was delivered: a success beats a failure.
        "delivery": {"ok": 3, "failed": 1, "pending": 2},
        "engagement": {"ok": 1, "failed": 0, "pending": 5},
        "withdrawal": {"ok": 1, "failed": 0, "pending": 5},
    }
    channels = {c["channel"]: c for c in funnel["channels"]}
    assert {name: c["total"] for name, c in channels.items()} == {"ums": 1, "app": 3, "sms": 2}
    assert channels["app"]["stages"]["delivery"] == {"ok": 2, "failed": 1, "pending": 0}
    assert channels["sms"]["stages"]["submission"] == {"ok": 1, "failed": 1, "pending": 0}
    assert channels["sms"]["sender"] == 5


def test_the_summary_names_the_errors_and_the_time_to_each_stage(client, stored):
    summary = api_get(client, f"/api/messages/{MSGID}").json

    assert summary["errors"] == [
        {"code": 3001, "message": "failure of type 1", "stage": "validation", "targets": 1},
        {"code": 3003, "message": "failure of type 3", "stage": "submission", "targets": 1},
        {"code": 3005, "message": "failure of type 5", "stage": "delivery", "targets": 1},
    ]
    # Not sent here: from the first event. Delivered after 10, 20 and 30 s.
    assert summary["timing"]["delivery"] == {
        "targets": 3,
        "median_seconds": 20.0,
        "p90_seconds": 30.0,
    }
    assert summary["timing"]["engagement"]["median_seconds"] == 40.0
    assert summary["timing"]["withdrawal"]["targets"] == 1


def test_lists_carry_the_funnel_but_not_the_details(client, stored):
    [listed] = api_get(client, "/api/messages").json["messages"]

    assert listed["funnel"]["stages"]["delivery"]["ok"] == 3
    assert listed["errors"] is None and listed["timing"] is None


def test_each_target_shows_its_stages_and_errors(client, stored):
    targets = api_get(client, f"/api/messages/{MSGID}/targets").json["targets"]
    by_user = {t["userid"]: t for t in targets}

    u2 = by_user["u2"]["stages"]
    assert set(u2) == {"submission", "delivery"}  # its validation came from UMS itself
    assert u2["delivery"]["status"] == "delivery_failed"
    assert u2["delivery"]["error"] == {"code": 3005, "message": "failure of type 5"}
    u6 = by_user["u6"]["stages"]["delivery"]
    assert (u6["status"], u6["error"]) == ("delivered", None)
    assert u6["at"].startswith("2023-11-14T22:13:50")  # SENT_TIME + 30 s
    u5 = by_user["u5"]
    assert u5["status"] == "withdrawn"
    assert u5["stages"]["delivery"]["status"] == "delivered"  # not lost to the withdraw
    assert by_user["u4"]["stages"] == {
        "validation": {
            "status": "target_invalid",
            "at": "2023-11-14T22:13:20+00:00",
            "error": {"code": 3001, "message": "failure of type 1"},
        }
    }


@pytest.mark.parametrize(
    ("filters", "users"),
    [
        ({"has": "delivered"}, ["u1", "u5", "u6"]),
        ({"has": "delivered", "lacks": "clicked"}, ["u5", "u6"]),
        ({"has": ["submitted", "delivered"]}, ["u1", "u5", "u6"]),
        ({"has": "delivery_failed"}, ["u2"]),  # u6's failure was overtaken
        ({"lacks": ["delivered", "delivery_failed"]}, ["u3", "u4"]),
        ({"has": "withdrawn"}, ["u5"]),
        ({"channel": "sms"}, ["u3", "u5"]),
        ({"channel": "ums"}, ["u4"]),
        ({"channel": "wechatwk"}, []),
        ({"error_code": "3005"}, ["u2"]),
        ({"error_code": "3003", "channel": "sms"}, ["u3"]),
        ({"status": "delivered", "has": "delivered"}, ["u6"]),
    ],
)
def test_targets_filter_by_stages_channel_and_error(client, stored, filters, users):
    assert _users(client, **filters) == users


@pytest.mark.parametrize(
    ("filters", "parameter"),
    [
        ({"has": "opened"}, "has"),
        ({"lacks": ["clicked", "nope"]}, "lacks"),
        ({"channel": "carrier-pigeon"}, "channel"),
        ({"error_code": "12a"}, "error_code"),
        ({"channel": ["sms", "app"]}, "channel"),
    ],
)
def test_bad_target_filters_are_400_naming_the_parameter(client, stored, filters, parameter):
    response = client.get(f"/api/messages/{MSGID}/targets", query_string=filters, headers=bearer())

    assert response.status_code == 400
    assert response.json["message"].startswith(f"{parameter}")
