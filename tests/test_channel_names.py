"""Every view names a target's channel alike: ``sender`` 9 is WeCom when its records
carry ``wechatwk_sender`` and 5G messaging when they do not, in the timeline and the
targets list, whichever record arrived first."""

from __future__ import annotations

from tests.helpers import api_get, post, record

MSGID = "v:1t:1795686830p:1n:9"


def _channels(client, path: str, items: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in api_get(client, f"/api/messages/{MSGID}/{path}").json[items]:
        found.setdefault(item["userid"], set()).add(item["channel"])
    return found


def test_sender_9_is_named_alike_in_timeline_and_targets(client):
    wecom = {"msgid": MSGID, "sender": 9}
    batch = [
        # WeCom: only the later record carries wechatwk_sender (it arrives first here).
        record(4, userid="wk-user", wechatwk_sender=1, **wecom),
        record(2, userid="wk-user", **wecom),
        record(2, userid="wk-user2", wechatwk_sender=0, **wecom),
        record(2, userid="g5-user", **wecom),  # no wechatwk_sender: 5G messaging
    ]
    batch[1].pop("wechatwk_sender", None)
    batch[3].pop("wechatwk_sender", None)
    assert post(client, batch).status_code == 200
    # A later batch without the field does not unname the target.
    later = record(6, userid="wk-user", **wecom)
    later.pop("wechatwk_sender", None)
    assert post(client, [later]).status_code == 200

    targets = _channels(client, "targets", "targets")
    assert targets == {"wk-user": {"wechatwk"}, "wk-user2": {"wechatwk"}, "g5-user": {"5g"}}
    timeline = _channels(client, "timeline", "events")
    assert timeline["wk-user2"] == {"wechatwk"} and timeline["g5-user"] == {"5g"}
    # Each event is named by its own record; the target by everything known of it.
    assert timeline["wk-user"] == {"wechatwk", "5g"}
