"""UMS send targets (``aud_xxx``): their kinds, limits and how they combine.

From UMS's page 普通消息发送 v1 (Ordinary message sending v1), section "aud_xxx: send
targets", and the Go SDK cavlabs/jiguang-sdk-go (``api/jums/audience``), whose comments
quote the same page in Chinese:

- Five kinds of target: everyone (a broadcast, sent to ``/v1/broadcast`` with no
  ``aud_xxx`` at all), tags, user ids, user segments, and custom channel registration
  ids. A targeted send (``/v1/sent``, ``/v1/template/sent``) needs at least one.
- User targets work on UMS's own user system (users uploaded through its user API):
  ``aud_tag``: at most 20 tags per request, each at most 40 UTF-8 bytes of letters,
  digits, Chinese, ``_`` and ``@!#$&*+=.|¥``; ``aud_userid``: at most 1000 per request
  (more answers business code 1015004), each at most 64 characters of letters, digits,
  ``_`` and the same specials; ``aud_segment``: a segment id made in the console,
  typed as an array but limited to one. The page writes the yen sign half-width (¥),
  the SDK full-width (￥): both are accepted.
- Custom channel registration ids send without uploaded users: ``aud_app``,
  ``aud_wechatoa``, ``aud_wechatmp``, ``aud_sms``, ``aud_email``, ``aud_alipay_life``,
  ``aud_dingtalk_cc``, ``aud_wechatwk`` and ``aud_wechatwk_linkedcorp`` (WeCom users of
  linked corps), each an array of ``{"instance": reserved and ignored, "data": [ids]}``
  with at most 1000 ids per channel per request. The page gives that limit no code of
  its own, so going over it answers 4004 (invalid parameter).
- Custom channel ids and user targets cannot be in one message. With custom ids each
  ``aud_xxx`` needs its ``msg_xxx`` and each ``msg_xxx`` its ``aud_xxx``; linked-corp
  users share ``msg_wechatwk`` with the corp's own users. Tags, userids and a segment
  together are not forbidden, and the SDK's own template example
  (``examples/jums/apiv1_test.go``) sends all three in one body.
- The SDK leaves ``instance`` out when empty (``omitempty``); ``data`` it always sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from ..protocol import TOO_MANY_USERIDS, SendKind
from .checks import as_array, as_object, as_string, fail, optional_string, required

MAX_TAGS: Final = 20
MAX_TAG_BYTES: Final = 40
MAX_USERID_CHARS: Final = 64

USER_AUDIENCES: Final = ("aud_tag", "aud_userid", "aud_segment")

# Each custom channel target with the msg_xxx that carries its content.
MSG_FOR_AUDIENCE: Final[Mapping[str, str]] = {
    "aud_app": "msg_app",
    "aud_wechatoa": "msg_wechatoa",
    "aud_wechatmp": "msg_wechatmp",
    "aud_sms": "msg_sms",
    "aud_email": "msg_email",
    "aud_alipay_life": "msg_alipay_life",
    "aud_dingtalk_cc": "msg_dingtalk_cc",
    "aud_wechatwk": "msg_wechatwk",
    "aud_wechatwk_linkedcorp": "msg_wechatwk",
}
CUSTOM_AUDIENCES: Final = tuple(MSG_FOR_AUDIENCE)
AUDIENCES: Final = USER_AUDIENCES + CUSTOM_AUDIENCES
MSG_CHANNELS: Final = tuple(dict.fromkeys(MSG_FOR_AUDIENCE.values()))

_SPECIALS: Final = r"_@!#$&*+=.|¥￥"
_USERID_RE: Final = re.compile(rf"[A-Za-z0-9{re.escape(_SPECIALS)}]+")
_CJK: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TAG_RE: Final = re.compile(rf"[A-Za-z0-9{_CJK}{re.escape(_SPECIALS)}]+")


def audience_keys(message: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The user and the custom channel ``aud_xxx`` keys of a message; fail when it has both."""
    users = [key for key in USER_AUDIENCES if key in message]
    customs = [key for key in CUSTOM_AUDIENCES if key in message]
    if users and customs:
        fail(customs[0], f"custom channel targets cannot be mixed with {users[0]}")
    return users, customs


def _check_tags(value: Any) -> None:
    tags = as_array(value, "aud_tag", max_len=MAX_TAGS)
    for i, tag in enumerate(tags):
        field = f"aud_tag[{i}]"
        as_string(tag, field, max_bytes=MAX_TAG_BYTES)
        if not _TAG_RE.fullmatch(tag):
            fail(field, f"only letters, digits, Chinese and {_SPECIALS} are allowed")


def _check_userids(value: Any, max_ids: int | None) -> None:
    userids = as_array(value, "aud_userid")
    if max_ids is not None and len(userids) > max_ids:
        fail(
            "aud_userid",
            f"at most {max_ids} userids per request, got {len(userids)}",
            TOO_MANY_USERIDS,
        )
    for i, userid in enumerate(userids):
        field = f"aud_userid[{i}]"
        as_string(userid, field, max_chars=MAX_USERID_CHARS)
        if not _USERID_RE.fullmatch(userid):
            fail(field, f"only letters, digits and {_SPECIALS} are allowed")


def _check_segment(value: Any) -> None:
    segments = as_array(value, "aud_segment", max_len=1)
    as_string(segments[0], "aud_segment[0]")


def _custom_ids(value: Any, key: str) -> list[list[str]]:
    """The id lists of a custom channel target: [{"instance"?, "data": [ids]}, ...]."""
    out: list[list[str]] = []
    for i, item in enumerate(as_array(value, key)):
        at = f"{key}[{i}]"
        entry = as_object(item, at)
        # UMS ignores the reserved instance field; only its type is checked.
        optional_string(entry, "instance", at)
        data = as_array(required(entry, "data", at), f"{at}.data")
        for j, ident in enumerate(data):
            as_string(ident, f"{at}.data[{j}]")
        out.append(data)
    return out


def check_audience(message: Mapping[str, Any], kind: SendKind, max_ids: int | None) -> None:
    """Fail on the first ``aud_xxx`` of ``message`` that UMS would refuse for ``kind``.

    ``max_ids=None`` skips the per-request id limits (userids, ids per custom channel).
    """
    present = [key for key in AUDIENCES if key in message]
    if kind.is_broadcast:
        if present:
            fail(present[0], "a broadcast takes no audience")
        return
    if not present:
        fail("aud_*", "a targeted send needs an audience (aud_userid, aud_tag, ...)")
    _, customs = audience_keys(message)
    # The page forbids only mixing custom ids with user targets; tag, userid and
    # segment together are not forbidden, so they are accepted.
    if "aud_tag" in message:
        _check_tags(message["aud_tag"])
    if "aud_userid" in message:
        _check_userids(message["aud_userid"], max_ids)
    if "aud_segment" in message:
        _check_segment(message["aud_segment"])
    for key in customs:
        total = sum(len(ids) for ids in _custom_ids(message[key], key))
        if max_ids is not None and total > max_ids:
            fail(key, f"at most {max_ids} ids per channel per request, got {total}")
