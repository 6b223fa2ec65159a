"""validate_message: the whole body of a UMS send, checked the way UMS would check it.

From UMS's pages 普通消息发送 v1 (Ordinary message sending v1) and 模板消息发送 v1
(Template message sending v1), checked against the send parameters of the public Go SDK
cavlabs/jiguang-sdk-go (``api/jums/v1_*send.go``); the business codes from 业务返回码
(Business return codes):

- Beside its targets (``aud_xxx``, :mod:`.audience`) and its content, a body may hold
  ``rule_id``, ``option`` and ``callback``; any other key, an unknown ``msg_xxx`` or
  ``aud_xxx`` too, answers 4004 (invalid parameter), like every failure here without
  a code of its own. Neither the pages nor the SDK have a 5G messaging channel to send
  on (5G appears only as a callback ``sender``), so ``msg_5g`` is unknown too.
- An ordinary send (``/v1/sent``, ``/v1/broadcast``) carries its content as
  ``msg_xxx`` channel arrays (:mod:`.channels`), at least one.
- A template send (``/v1/template/sent``, ``/v1/template/broadcast``) sends a template
  made in the console: ``template_id`` (a positive integer, int64 in the SDK),
  ``template_para`` (the variables, one set for every channel of the template) and
  ``app_para``, needed when the template has the APP channel: ``platform`` (required,
  else 1015084; ``"all"``, one platform as in the page's example, or an array, from
  android, ios, quickapp and web, else 1015085), ``time_to_live`` (seconds, default one
  day, at most 10 days) and ``apns_production`` (a bool). Any ``msg_xxx`` in a template
  send answers 1015094. The page marks ``template_para`` required; the SDK marks it
  optional and leaves it out when no variables are given, so a body without it passes,
  and one with it must hold an object.
- ``rule_id``: a send strategy (fallback) made in the console; 0 or left out sends on
  every channel at once. It has no effect with custom channel ids.
- ``option``: ``sendno`` (echoed in the answer), ``owner`` (the submitter, needed when
  the channel reviews API messages), ``black_id`` or ``white_id`` (a blacklist or
  whitelist id, never both: 1015097) and ``priority`` (1 high, 2 medium, 3 low). The
  page says the option "currently contains" these, so other keys are let through.
- ``callback``: ``url``, this send's callback URL instead of the console's (it must
  have passed the console's verification; here it must be an http(s) URL), and
  ``params``, an object UMS returns in every status callback of the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from ...values import is_http_url, is_int
from ..protocol import (
    APP_PLATFORM_MISSING,
    BLACK_AND_WHITE_ID,
    MAX_IDS,
    MSG_IN_TEMPLATE_SEND,
    SendKind,
)
from .audience import AUDIENCES, CUSTOM_AUDIENCES, MSG_CHANNELS, MSG_FOR_AUDIENCE, check_audience
from .channels import CHANNEL_RULES, check_platform
from .checks import (
    as_array,
    as_integer,
    as_object,
    as_string,
    boolean,
    fail,
    optional_string,
    present,
    required,
)

MAX_APP_TTL_SECONDS: Final = 10 * 24 * 3600

_COMMON_KEYS: Final = frozenset({"rule_id", "option", "callback"})
_TEMPLATE_KEYS: Final = frozenset({"template_id", "template_para", "app_para"})
# The template app_para platforms, as the SDK's AppParams lists them: web, and no hmos.
_APP_PARA_PLATFORMS: Final = frozenset({"android", "ios", "quickapp", "web"})


def _check_keys(message: Mapping[str, Any], kind: SendKind) -> None:
    allowed = _COMMON_KEYS | (_TEMPLATE_KEYS if kind.is_template else frozenset())
    for key in sorted(message, key=str):
        name = str(key)
        if name.startswith("msg_") and kind.is_template:
            fail(name, "a template send takes no msg_xxx content", MSG_IN_TEMPLATE_SEND)
        if name in allowed or name in AUDIENCES or name in CHANNEL_RULES:
            continue
        if name.startswith("msg_"):
            linked = name == "msg_wechatwk_linkedcorp"
            fail(name, "unknown channel" + (" (linked corps share msg_wechatwk)" if linked else ""))
        if name.startswith("aud_"):
            fail(name, "unknown audience")
        fail(name, "unknown field")


def _check_template_fields(message: Mapping[str, Any]) -> None:
    template_id = required(message, "template_id", "")
    if not is_int(template_id) or template_id <= 0:
        fail("template_id", "must be a positive integer")
    if present(message, "template_para"):
        as_object(message["template_para"], "template_para")
    if present(message, "app_para"):
        app_para = as_object(message["app_para"], "app_para")
        if not present(app_para, "platform"):
            fail("app_para.platform", "is required", APP_PLATFORM_MISSING)
        check_platform(app_para["platform"], "app_para.platform", _APP_PARA_PLATFORMS)
        if present(app_para, "time_to_live"):
            ttl = as_integer(app_para["time_to_live"], "app_para.time_to_live")
            if not 0 <= ttl <= MAX_APP_TTL_SECONDS:
                fail("app_para.time_to_live", f"must be 0-{MAX_APP_TTL_SECONDS} seconds (10 days)")
        boolean(app_para, "apns_production", "app_para")


def _check_contents(message: Mapping[str, Any]) -> None:
    channels = [key for key in MSG_CHANNELS if key in message]
    if not channels:
        fail("msg_*", "at least one msg_xxx channel content is required")
    entries = {key: as_array(message[key], key) for key in channels}
    customs = [key for key in CUSTOM_AUDIENCES if key in message]
    if customs:
        for aud in customs:
            if MSG_FOR_AUDIENCE[aud] not in message:
                fail(MSG_FOR_AUDIENCE[aud], f"is required: {aud} has no content")
        for msg in channels:
            if not any(MSG_FOR_AUDIENCE[aud] == msg for aud in customs):
                auds = " or ".join(a for a, m in MSG_FOR_AUDIENCE.items() if m == msg)
                fail(msg, f"custom targets are used but there is no {auds}")
    for key in channels:
        for i, item in enumerate(entries[key]):
            CHANNEL_RULES[key](as_object(item, f"{key}[{i}]"), f"{key}[{i}]")


def _check_rule_id(message: Mapping[str, Any]) -> None:
    if present(message, "rule_id"):
        rule_id = as_integer(message["rule_id"], "rule_id")
        if rule_id < 0:
            fail("rule_id", "must not be negative (0 = no send strategy)")


def _check_option(message: Mapping[str, Any]) -> None:
    if not present(message, "option"):
        return
    # Unknown keys pass: the page says the option "currently contains" these.
    option = as_object(message["option"], "option")
    optional_string(option, "sendno", "option")
    optional_string(option, "owner", "option")
    for key in ("black_id", "white_id"):
        if present(option, key):
            as_integer(option[key], f"option.{key}")
    if present(option, "black_id") and present(option, "white_id"):
        fail("option.white_id", "black_id and white_id cannot both be given", BLACK_AND_WHITE_ID)
    if present(option, "priority"):
        as_integer(option["priority"], "option.priority", choices=(1, 2, 3))


def _check_callback(message: Mapping[str, Any]) -> None:
    if not present(message, "callback"):
        return
    callback = as_object(message["callback"], "callback")
    if present(callback, "url"):
        url = as_string(callback["url"], "callback.url")
        if not is_http_url(url):
            fail("callback.url", "must be an http(s) URL")
    if present(callback, "params"):
        as_object(callback["params"], "callback.params")


def validate_message(
    message: Mapping[str, Any], *, kind: SendKind | str, max_ids: int | None = MAX_IDS
) -> None:
    """Raise the first InvalidMessageError UMS would answer for this send body, else return.

    Checks run in a fixed order: top-level keys, template fields, audience, channel
    contents, rule_id, option, callback. ``max_ids=None`` skips the per-request id limits
    (1000 userids, 1000 ids per custom channel) so a big audience can be checked before
    split_message cuts it up.
    """
    kind = SendKind(kind)
    as_object(message, "message")
    _check_keys(message, kind)
    if kind.is_template:
        _check_template_fields(message)
    check_audience(message, kind, max_ids)
    if not kind.is_template:
        _check_contents(message)
    _check_rule_id(message)
    _check_option(message)
    _check_callback(message)
