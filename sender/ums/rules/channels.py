"""The content rules of each ``msg_xxx`` channel of an ordinary UMS send.

A message's ``msg_xxx`` keys choose the channels it goes to; each is an array of entries
in that channel's own format. From UMS's page 普通消息发送 v1 (Ordinary message
sending v1), section "msg_xxx: message content", checked against the message structs of
the public Go SDK cavlabs/jiguang-sdk-go (``api/jums/message``). Where the page and the
SDK agree, the rule follows them; where they disagree, both readings pass:

- ``msg_app``: UMS hands App content to JPush, so an entry is a JPush push payload;
  the page lists ``callback``, ``audience`` and ``voip`` as unsupported there.
  ``platform`` is required (missing: business code 1015084) and is ``"all"`` or an
  array from android, ios, quickapp and hmos, the push platforms of the SDK
  (``api/jpush/push/send``); any other value answers 1015085. A ``notification``, a
  ``message`` (with ``msg_content``) or a ``live_activity`` is required;
  ``options.time_to_live`` is whole seconds and ``options.apns_production`` a bool.
- ``msg_wechatoa`` (WeChat official account): ``type`` 0 (template message, jumps to
  ``url``) or 1 (subscription notice, jumps to ``page``); ``template_id`` and ``data``
  (``{"key": {"value": any, "color"?: str}}``) required; optional ``miniprogram``
  ``{appid, pagepath}`` and ``color``. The page's tables list ``appid`` and
  ``pagepath`` as rows of their own and the SDK's structs carry them flat beside
  ``miniprogram`` too, so flat strings pass as well.
- ``msg_wechatmp`` (WeChat mini program): ``template_id`` and ``data`` required;
  optional ``page``, ``miniprogram_state`` (developer, trial or formal) and ``lang``
  (zh_CN, en_US, zh_HK or zh_TW).
- ``msg_alipay_life``: ``template_id`` (at most 128 characters) and ``context`` with
  ``head_color`` (10), ``url`` (256), ``action_name`` (8 Chinese or 16 English
  characters) and the template's ``keyword1``..``keywordN``, ``first`` and ``remark``
  slots, each ``{value (at most 128), color}``.
- ``msg_sms``: a JSMS template SMS, ``temp_id`` (a positive integer; otherwise
  1015095, illegal JSMS template id), an optional ``temp_para`` (an object) and an
  optional ``sign_id``; or, for an SMS channel connected over CMPP, the text
  ``content``. The page marks ``temp_para`` required, but it defers to JSMS's own
  page 短信发送 API for the entry, and the SDK (its ``JSMS`` struct, and its JSMS
  client's ``MessageSendParam``) marks it optional and leaves it out when a template
  has no variables: a body without it passes. ``sign_id`` is a string on the page,
  an integer in the SDK: both pass.
- ``msg_email``: ``subject`` and ``text`` (HTML allowed) required; ``files`` lists
  attachment URLs, uploaded through UMS's material API or any URL UMS can reach.
- ``msg_dingtalk_cc`` (DingTalk work notice): the page documents one type, the text
  message, ``{"msg": {"msgtype": "text", "text": {"content": ...}}}``, and the SDK
  knows only ``text`` (``DingtalkCCMsg.Validate`` refuses any other), so every other
  ``msgtype`` is refused.
- ``msg_wechatwk`` (WeCom): see :mod:`sender.ums.rules.wechatwk`.

Where neither the page nor the SDK settles a point, a rule accepts rather than refuses,
so the emulator never turns away a message the real UMS takes; each such place says
so. Failures without a code named above answer 4004 (invalid parameter).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from ...values import is_int
from ..protocol import APP_PLATFORM_MISSING, APP_PLATFORM_WRONG, SMS_TEMPLATE_ID_ILLEGAL
from .checks import (
    as_array,
    as_integer,
    as_object,
    as_string,
    boolean,
    choice,
    fail,
    join,
    optional_string,
    present,
    required,
)
from .wechatwk import check_wechatwk

JPUSH_PLATFORMS: Final = frozenset({"android", "ios", "quickapp", "hmos"})


def check_platform(value: Any, field: str, allowed: frozenset[str]) -> None:
    """Fail with 1015085 unless ``value`` is "all", one platform, or a list of platforms."""
    names = sorted(allowed)
    if value == "all":
        return
    if isinstance(value, str):
        # JPush documents "all" or an array; the page's own example sends "android"
        # bare, so a single platform string is accepted too.
        if value not in allowed:
            fail(
                field,
                f"must be 'all' or from {', '.join(names)}, got {value!r}",
                APP_PLATFORM_WRONG,
            )
        return
    if not isinstance(value, list | tuple) or not value:
        fail(
            field, f"must be 'all' or a non-empty array from {', '.join(names)}", APP_PLATFORM_WRONG
        )
    for i, item in enumerate(value):
        if item not in allowed:
            fail(
                f"{field}[{i}]",
                f"must be one of {', '.join(names)}, got {item!r}",
                APP_PLATFORM_WRONG,
            )


def _check_app(entry: Mapping[str, Any], path: str) -> None:
    # The rest of a JPush push payload is passed through. The page calls callback,
    # audience and voip "unsupported", not refused, so they are not rejected here.
    if not present(entry, "platform"):
        fail(join(path, "platform"), "is required for the APP channel", APP_PLATFORM_MISSING)
    check_platform(entry["platform"], join(path, "platform"), JPUSH_PLATFORMS)
    if not any(present(entry, key) for key in ("notification", "message", "live_activity")):
        fail(join(path, "notification"), "a notification or a message is required")
    if present(entry, "notification"):
        notification = as_object(entry["notification"], join(path, "notification"))
        optional_string(notification, "alert", join(path, "notification"))
    if present(entry, "message"):
        message = as_object(entry["message"], join(path, "message"))
        as_string(
            required(message, "msg_content", join(path, "message")),
            join(path, "message.msg_content"),
            allow_empty=True,
        )
    optional_string(entry, "cid", path)
    if present(entry, "options"):
        options = as_object(entry["options"], join(path, "options"))
        if present(options, "time_to_live"):
            ttl = as_integer(options["time_to_live"], join(path, "options.time_to_live"))
            if ttl < 0:
                fail(join(path, "options.time_to_live"), "must not be negative")
        boolean(options, "apns_production", join(path, "options"))


def _template_data(value: Any, field: str) -> None:
    """WeChat template data: {"key": {"value": any, "color"?: str}, ...}."""
    data = as_object(value, field)
    for key, item in data.items():
        entry = as_object(item, f"{field}.{key}")
        if "value" not in entry:
            fail(f"{field}.{key}.value", "is required")
        optional_string(entry, "color", f"{field}.{key}")


def _check_wechatoa(entry: Mapping[str, Any], path: str) -> None:
    # Both types need template_id and data, and either may carry a miniprogram jump.
    as_integer(required(entry, "type", path), join(path, "type"), choices=(0, 1))
    as_string(required(entry, "template_id", path), join(path, "template_id"))
    _template_data(required(entry, "data", path), join(path, "data"))
    optional_string(entry, "url", path)
    optional_string(entry, "page", path)
    optional_string(entry, "color", path)
    optional_string(entry, "appid", path)
    optional_string(entry, "pagepath", path)
    if present(entry, "miniprogram"):
        jump = as_object(entry["miniprogram"], join(path, "miniprogram"))
        optional_string(jump, "appid", join(path, "miniprogram"))
        optional_string(jump, "pagepath", join(path, "miniprogram"))


def _check_wechatmp(entry: Mapping[str, Any], path: str) -> None:
    as_string(required(entry, "template_id", path), join(path, "template_id"))
    _template_data(required(entry, "data", path), join(path, "data"))
    optional_string(entry, "page", path)
    choice(entry, "miniprogram_state", path, ("developer", "trial", "formal"))
    choice(entry, "lang", path, ("zh_CN", "en_US", "zh_HK", "zh_TW"))


def _alipay_width(text: str) -> int:
    # "at most 8 Chinese characters or 16 English characters": a non-ASCII character
    # counts as two.
    return sum(1 if ord(char) < 128 else 2 for char in text)


_ALIPAY_SLOT_RE: Final = re.compile(r"keyword\d+|first|remark")


def _check_alipay_life(entry: Mapping[str, Any], path: str) -> None:
    as_string(required(entry, "template_id", path), join(path, "template_id"), max_chars=128)
    ctx_path = join(path, "context")
    context = as_object(required(entry, "context", path), ctx_path)
    as_string(required(context, "head_color", ctx_path), join(ctx_path, "head_color"), max_chars=10)
    as_string(required(context, "url", ctx_path), join(ctx_path, "url"), max_chars=256)
    action = as_string(required(context, "action_name", ctx_path), join(ctx_path, "action_name"))
    if _alipay_width(action) > 16:
        fail(join(ctx_path, "action_name"), "must be at most 8 Chinese or 16 English characters")
    for key, value in context.items():
        if _ALIPAY_SLOT_RE.fullmatch(key) and value is not None:
            slot = as_object(value, join(ctx_path, key))
            optional_string(slot, "value", join(ctx_path, key), max_chars=128)
            optional_string(slot, "color", join(ctx_path, key))


def _check_sms(entry: Mapping[str, Any], path: str) -> None:
    # Which of JSMS and CMPP UMS uses depends on the channel's setup, so an entry
    # carrying both is accepted.
    if not present(entry, "temp_id") and not present(entry, "content"):
        fail(join(path, "temp_id"), "is required (or content, for a CMPP SMS channel)")
    if present(entry, "temp_id"):
        temp_id = entry["temp_id"]
        if not is_int(temp_id) or temp_id <= 0:
            fail(
                join(path, "temp_id"),
                "must be a positive integer JSMS template id",
                SMS_TEMPLATE_ID_ILLEGAL,
            )
        if present(entry, "temp_para"):
            as_object(entry["temp_para"], join(path, "temp_para"))
        # The page types sign_id as a string ("1"), the Go SDK as an int: take both.
        if present(entry, "sign_id") and not (
            is_int(entry["sign_id"]) or isinstance(entry["sign_id"], str)
        ):
            fail(join(path, "sign_id"), "must be a string or an integer")
    if present(entry, "content"):
        as_string(entry["content"], join(path, "content"))


def _check_email(entry: Mapping[str, Any], path: str) -> None:
    as_string(required(entry, "subject", path), join(path, "subject"))
    as_string(required(entry, "text", path), join(path, "text"))
    if present(entry, "files"):
        # Typed "Object Array" in the page's table but URL strings in its example and
        # in the Go SDK: accept either kind of item.
        for i, item in enumerate(as_array(entry["files"], join(path, "files"), min_len=0)):
            if not isinstance(item, str | Mapping):
                fail(f"{path}.files[{i}]", "must be a URL string")


def _check_dingtalk_cc(entry: Mapping[str, Any], path: str) -> None:
    msg_path = join(path, "msg")
    msg = as_object(required(entry, "msg", path), msg_path)
    msgtype = as_string(required(msg, "msgtype", msg_path), join(msg_path, "msgtype"))
    if msgtype != "text":
        fail(
            join(msg_path, "msgtype"), f"must be 'text' (the one documented type), got {msgtype!r}"
        )
    text = as_object(required(msg, "text", msg_path), join(msg_path, "text"))
    as_string(required(text, "content", join(msg_path, "text")), join(msg_path, "text.content"))


# One rule per channel: msg_xxx -> the check of one entry of its array.
CHANNEL_RULES: Final[Mapping[str, Callable[[Mapping[str, Any], str], None]]] = {
    "msg_app": _check_app,
    "msg_wechatoa": _check_wechatoa,
    "msg_wechatmp": _check_wechatmp,
    "msg_sms": _check_sms,
    "msg_email": _check_email,
    "msg_alipay_life": _check_alipay_life,
    "msg_dingtalk_cc": _check_dingtalk_cc,
    "msg_wechatwk": check_wechatwk,
}
