"""UMS rules of send targets: tags, userids, segments, custom channel ids, and their limits
(sender/ums/rules/audience.py)."""

from __future__ import annotations

import pytest

from sender.errors import InvalidMessageError
from sender.ums.rules import validate_message
from tests.ums_examples import (
    BASE,
    DOC_ALL_CONTENTS,
    DOC_CUSTOM_AUDIENCE,
    DOC_EMAIL,
    DOC_SMS_CMPP,
    DOC_WECHATWK_TEXT,
    DROP,
    case,
    changed,
    custom,
    userids,
)

VALID = [
    pytest.param("sent", {**DOC_CUSTOM_AUDIENCE, **DOC_ALL_CONTENTS}, id="doc-custom-all"),
    pytest.param(
        "sent",
        {
            "aud_wechatwk_linkedcorp": custom("CorpId1/userid1"),
            "msg_wechatwk": [DOC_WECHATWK_TEXT],
        },
        id="custom-linkedcorp-shares-msg_wechatwk",
    ),
    pytest.param("sent", changed(BASE, aud_userid=DROP, aud_tag=["tag1", "tag2"]), id="aud-tag"),
    pytest.param(
        "sent",
        changed(BASE, aud_userid=DROP, aud_tag=["标签_1", "VIP@a!#$&*+=.|¥￥", "中" * 13]),
        id="aud-tag-chinese-specials-39-bytes",
    ),
    pytest.param(
        "sent",
        changed(BASE, aud_userid=DROP, aud_tag=[f"t{i}" for i in range(20)]),
        id="aud-tag-20",
    ),
    pytest.param("sent", changed(BASE, aud_userid=DROP, aud_segment=["1000"]), id="aud-segment"),
    pytest.param(
        "sent", changed(BASE, aud_userid=["user1", "A_z9@!#$&*+=.|¥" + "x" * 49]), id="userid-64"
    ),
    pytest.param("sent", changed(BASE, aud_userid=userids(1000)), id="aud-userid-1000"),
    pytest.param(
        "sent",
        {
            "aud_sms": [{"data": userids(600, "1")}, {"data": userids(400, "2")}],
            "msg_sms": [{"content": "x"}],
        },
        id="custom-1000-ids-over-two-entries",
    ),
]

INVALID = [
    # audience kinds
    case("broadcast-with-audience", BASE, "aud_userid", kind="broadcast"),
    case("targeted-without-audience", changed(BASE, aud_userid=DROP), "aud_*"),
    case("tag-not-array", changed(BASE, aud_userid=DROP, aud_tag="tag1"), "aud_tag"),
    case("tag-empty-array", changed(BASE, aud_userid=DROP, aud_tag=[]), "aud_tag"),
    case("tag-21", changed(BASE, aud_userid=DROP, aud_tag=[f"t{i}" for i in range(21)]), "aud_tag"),
    case("tag-41-bytes", changed(BASE, aud_userid=DROP, aud_tag=["a" * 41]), "aud_tag[0]"),
    case(
        "tag-42-utf8-bytes", changed(BASE, aud_userid=DROP, aud_tag=["t", "中" * 14]), "aud_tag[1]"
    ),
    case("tag-bad-char", changed(BASE, aud_userid=DROP, aud_tag=["ok", "tag-1"]), "aud_tag[1]"),
    case("tag-not-string", changed(BASE, aud_userid=DROP, aud_tag=[1]), "aud_tag[0]"),
    case("userid-not-array", changed(BASE, aud_userid="user1"), "aud_userid"),
    case("userid-not-string", changed(BASE, aud_userid=["u1", 2]), "aud_userid[1]"),
    case("userid-1001", changed(BASE, aud_userid=userids(1001)), "aud_userid", 1015004),
    case("userid-65-chars", changed(BASE, aud_userid=["u" * 65]), "aud_userid[0]"),
    case("userid-space", changed(BASE, aud_userid=["u1", "u 2"]), "aud_userid[1]"),
    case("userid-chinese", changed(BASE, aud_userid=["用户"]), "aud_userid[0]"),
    case("userid-empty", changed(BASE, aud_userid=[""]), "aud_userid[0]"),
    case("segment-two", changed(BASE, aud_userid=DROP, aud_segment=["1", "2"]), "aud_segment"),
    case("segment-none", changed(BASE, aud_userid=DROP, aud_segment=[]), "aud_segment"),
    case(
        "segment-not-string", changed(BASE, aud_userid=DROP, aud_segment=[1000]), "aud_segment[0]"
    ),
    # custom channel targets
    case("custom-not-objects", {"aud_sms": ["138"], "msg_sms": [DOC_SMS_CMPP]}, "aud_sms[0]"),
    case(
        "custom-no-data",
        {"aud_sms": [{"instance": "sms"}], "msg_sms": [DOC_SMS_CMPP]},
        "aud_sms[0].data",
    ),
    case(
        "custom-id-not-string",
        {"aud_sms": custom(138), "msg_sms": [DOC_SMS_CMPP]},
        "aud_sms[0].data[0]",
    ),
    case(
        "custom-instance-not-string",
        {"aud_sms": [{"instance": 1, "data": ["1"]}], "msg_sms": [DOC_SMS_CMPP]},
        "aud_sms[0].instance",
    ),
    case(
        "custom-1001-ids",
        {"aud_sms": [{"data": userids(600)}, {"data": userids(401)}], "msg_sms": [DOC_SMS_CMPP]},
        "aud_sms",
    ),
    case("custom-mixed-with-userid", changed(BASE, aud_sms=custom("138")), "aud_sms"),
    case(
        "custom-mixed-with-tag",
        {"aud_tag": ["t"], "aud_email": custom("a@b.c"), "msg_email": [DOC_EMAIL]},
        "aud_email",
    ),
    case(
        "custom-aud-without-msg",
        {"aud_sms": custom("138"), "aud_email": custom("a@b.c"), "msg_sms": [DOC_SMS_CMPP]},
        "msg_email",
    ),
    case(
        "custom-msg-without-aud",
        {"aud_sms": custom("138"), "msg_sms": [DOC_SMS_CMPP], "msg_email": [DOC_EMAIL]},
        "msg_email",
    ),
]


def test_max_ids_none_skips_only_the_per_request_id_limits() -> None:
    big = changed(BASE, aud_userid=userids(2500))
    validate_message(big, kind="sent", max_ids=None)
    big_custom = {"aud_sms": custom(*userids(1500, "1")), "msg_sms": [DOC_SMS_CMPP]}
    validate_message(big_custom, kind="sent", max_ids=None)
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(big_custom, kind="sent")
    assert (caught.value.field, caught.value.code) == ("aud_sms", 4004)
    # Still checked with max_ids=None: tag count and id format.
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(
            changed(big, aud_userid=[*userids(1500), "bad id"]), kind="sent", max_ids=None
        )
    assert caught.value.field == "aud_userid[1500]"


def test_max_ids_sets_the_limit() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(changed(BASE, aud_userid=userids(3)), kind="sent", max_ids=2)
    assert (caught.value.field, caught.value.code) == ("aud_userid", 1015004)
