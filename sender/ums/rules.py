"""UMS message rules shared by the sender and the UMS emulator: validate, split, personalise.

Pure functions, no I/O. The rules come from the UMS "ordinary message sending v1" page
(the seed) and /work/shared/reference/providers.md sections 2-4. Where those leave a
point open, the rule here accepts rather than rejects, so the emulator never refuses a
message the real UMS takes; each such place says so in a comment.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from ..errors import InvalidMessageError
from ..values import is_int as _is_int
from .protocol import (
    APP_PLATFORM_MISSING,
    APP_PLATFORM_WRONG,
    BLACK_AND_WHITE_ID,
    INVALID_PARAMETER,
    MAX_IDS,
    MSG_IN_TEMPLATE_SEND,
    SMS_TEMPLATE_ID_ILLEGAL,
    TOO_MANY_USERIDS,
    SendKind,
)

MAX_TAGS: Final = 20
MAX_TAG_BYTES: Final = 40
MAX_USERID_CHARS: Final = 64
MAX_APP_TTL_SECONDS: Final = 10 * 24 * 3600
MAX_WECHATWK_DUPLICATE_CHECK_SECONDS: Final = 4 * 3600


USER_AUDIENCES: Final = ("aud_tag", "aud_userid", "aud_segment")

# Custom channel registration-id targets, each with the msg_xxx that carries its content.
# WeCom linked-corp users share msg_wechatwk (seed: "share it with ... msg_wechatwk").
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

_COMMON_KEYS: Final = frozenset({"rule_id", "option", "callback"})
_TEMPLATE_KEYS: Final = frozenset({"template_id", "template_para", "app_para"})

# Seed: userids are letters, digits, underscore and @!#$&*+=.|¥; tags also allow Chinese.
# Both the half-width ¥ (seed) and the full-width ￥ (providers.md) are accepted.
_SPECIALS: Final = r"_@!#$&*+=.|¥￥"
_USERID_RE: Final = re.compile(rf"[A-Za-z0-9{re.escape(_SPECIALS)}]+")
_CJK: Final = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_TAG_RE: Final = re.compile(rf"[A-Za-z0-9{_CJK}{re.escape(_SPECIALS)}]+")

# JPush platforms (msg_app) and the template app_para platforms (providers.md 3.1).
_JPUSH_PLATFORMS: Final = frozenset({"android", "ios", "quickapp", "hmos"})
_APP_PARA_PLATFORMS: Final = frozenset({"android", "ios", "quickapp", "web"})


# --------------------------------------------------------------------------- helpers


def _fail(field: str, reason: str, code: int = INVALID_PARAMETER) -> NoReturn:
    raise InvalidMessageError(field, reason, code)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _object(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(field, "must be an object")
    return value


def _array(value: Any, field: str, *, min_len: int = 1, max_len: int | None = None) -> list[Any]:
    if not isinstance(value, list | tuple):
        _fail(field, "must be an array")
    if len(value) < min_len:
        _fail(field, f"must have at least {min_len} item{'s' if min_len > 1 else ''}")
    if max_len is not None and len(value) > max_len:
        _fail(field, f"must have at most {max_len} items, got {len(value)}")
    return list(value)


def _string(
    value: Any,
    field: str,
    *,
    allow_empty: bool = False,
    max_chars: int | None = None,
    max_bytes: int | None = None,
) -> str:
    if not isinstance(value, str):
        _fail(field, "must be a string")
    if not value and not allow_empty:
        _fail(field, "must not be empty")
    if max_chars is not None and len(value) > max_chars:
        _fail(field, f"must be at most {max_chars} characters, got {len(value)}")
    if max_bytes is not None and _utf8_len(value) > max_bytes:
        _fail(field, f"must be at most {max_bytes} UTF-8 bytes, got {_utf8_len(value)}")
    return value


def _integer(value: Any, field: str, *, choices: Sequence[int] | None = None) -> int:
    if not _is_int(value):
        _fail(field, "must be an integer")
    if choices is not None and value not in choices:
        _fail(field, f"must be one of {', '.join(map(str, choices))}, got {value}")
    return int(value)


def _present(obj: Mapping[str, Any], key: str) -> bool:
    # A JSON null for an optional field is taken as "not given".
    return obj.get(key) is not None


def _required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    if not _present(obj, key):
        _fail(_join(path, key), "is required")
    return obj[key]


def _optional_string(obj: Mapping[str, Any], key: str, path: str, **limits: Any) -> None:
    if _present(obj, key):
        _string(obj[key], _join(path, key), allow_empty=True, **limits)


def _choice(obj: Mapping[str, Any], key: str, path: str, choices: Sequence[str]) -> None:
    if _present(obj, key):
        value = _string(obj[key], _join(path, key))
        if value not in choices:
            _fail(_join(path, key), f"must be one of {', '.join(choices)}, got {value!r}")


def _template_data(value: Any, field: str) -> None:
    """WeChat template data: {"key": {"value": any, "color"?: str}, ...}."""
    data = _object(value, field)
    for key, item in data.items():
        entry = _object(item, f"{field}.{key}")
        if "value" not in entry:
            _fail(f"{field}.{key}.value", "is required")
        _optional_string(entry, "color", f"{field}.{key}")


# --------------------------------------------------------------------------- msg_app


def _platform(value: Any, field: str, allowed: frozenset[str]) -> None:
    """ "all", a list of platforms, or (as in the seed's own example) one platform string."""
    names = sorted(allowed)
    if value == "all":
        return
    if isinstance(value, str):
        # JPush documents "all" or an array; the seed's example sends "android" bare,
        # so a single platform string is accepted too.
        if value not in allowed:
            _fail(
                field,
                f"must be 'all' or from {', '.join(names)}, got {value!r}",
                APP_PLATFORM_WRONG,
            )
        return
    if not isinstance(value, list | tuple) or not value:
        _fail(
            field, f"must be 'all' or a non-empty array from {', '.join(names)}", APP_PLATFORM_WRONG
        )
    for i, item in enumerate(value):
        if item not in allowed:
            _fail(
                f"{field}[{i}]",
                f"must be one of {', '.join(names)}, got {item!r}",
                APP_PLATFORM_WRONG,
            )


def _check_app(entry: Mapping[str, Any], path: str) -> None:
    # The rest of a JPush push payload is passed through. The seed calls callback,
    # audience and voip "unsupported", not refused, so they are not rejected here.
    if not _present(entry, "platform"):
        _fail(_join(path, "platform"), "is required for the APP channel", APP_PLATFORM_MISSING)
    _platform(entry["platform"], _join(path, "platform"), _JPUSH_PLATFORMS)
    if not any(_present(entry, key) for key in ("notification", "message", "live_activity")):
        _fail(_join(path, "notification"), "a notification or a message is required")
    if _present(entry, "notification"):
        notification = _object(entry["notification"], _join(path, "notification"))
        _optional_string(notification, "alert", _join(path, "notification"))
    if _present(entry, "message"):
        message = _object(entry["message"], _join(path, "message"))
        _string(
            _required(message, "msg_content", _join(path, "message")),
            _join(path, "message.msg_content"),
            allow_empty=True,
        )
    _optional_string(entry, "cid", path)
    if _present(entry, "options"):
        options = _object(entry["options"], _join(path, "options"))
        if _present(options, "time_to_live"):
            ttl = _integer(options["time_to_live"], _join(path, "options.time_to_live"))
            if ttl < 0:
                _fail(_join(path, "options.time_to_live"), "must not be negative")
        if _present(options, "apns_production") and not isinstance(
            options["apns_production"], bool
        ):
            _fail(_join(path, "options.apns_production"), "must be true or false")


# --------------------------------------------------------------------------- WeChat, Alipay


def _check_wechatoa(entry: Mapping[str, Any], path: str) -> None:
    # type 0 = template message (url), 1 = subscription notice (page); both need
    # template_id and data, and either may carry a miniprogram jump.
    _integer(_required(entry, "type", path), _join(path, "type"), choices=(0, 1))
    _string(_required(entry, "template_id", path), _join(path, "template_id"))
    _template_data(_required(entry, "data", path), _join(path, "data"))
    _optional_string(entry, "url", path)
    _optional_string(entry, "page", path)
    _optional_string(entry, "color", path)
    if _present(entry, "miniprogram"):
        jump = _object(entry["miniprogram"], _join(path, "miniprogram"))
        _optional_string(jump, "appid", _join(path, "miniprogram"))
        _optional_string(jump, "pagepath", _join(path, "miniprogram"))


def _check_wechatmp(entry: Mapping[str, Any], path: str) -> None:
    _string(_required(entry, "template_id", path), _join(path, "template_id"))
    _template_data(_required(entry, "data", path), _join(path, "data"))
    _optional_string(entry, "page", path)
    _choice(entry, "miniprogram_state", path, ("developer", "trial", "formal"))
    _choice(entry, "lang", path, ("zh_CN", "en_US", "zh_HK", "zh_TW"))


def _alipay_width(text: str) -> int:
    # "at most 8 Chinese characters or 16 English characters": a non-ASCII character
    # counts as two.
    return sum(1 if ord(char) < 128 else 2 for char in text)


_ALIPAY_SLOT_RE: Final = re.compile(r"keyword\d+|first|remark")


def _check_alipay_life(entry: Mapping[str, Any], path: str) -> None:
    _string(_required(entry, "template_id", path), _join(path, "template_id"), max_chars=128)
    ctx_path = _join(path, "context")
    context = _object(_required(entry, "context", path), ctx_path)
    _string(_required(context, "head_color", ctx_path), _join(ctx_path, "head_color"), max_chars=10)
    _string(_required(context, "url", ctx_path), _join(ctx_path, "url"), max_chars=256)
    action = _string(_required(context, "action_name", ctx_path), _join(ctx_path, "action_name"))
    if _alipay_width(action) > 16:
        _fail(_join(ctx_path, "action_name"), "must be at most 8 Chinese or 16 English characters")
    for key, value in context.items():
        if _ALIPAY_SLOT_RE.fullmatch(key) and value is not None:
            slot = _object(value, _join(ctx_path, key))
            _optional_string(slot, "value", _join(ctx_path, key), max_chars=128)
            _optional_string(slot, "color", _join(ctx_path, key))


# --------------------------------------------------------------------------- SMS, email


def _check_sms(entry: Mapping[str, Any], path: str) -> None:
    # JSMS template SMS (temp_id + temp_para) or CMPP text (content). Which one UMS uses
    # depends on the channel's setup, so an entry carrying both is accepted.
    if not _present(entry, "temp_id") and not _present(entry, "content"):
        _fail(_join(path, "temp_id"), "is required (or content, for a CMPP SMS channel)")
    if _present(entry, "temp_id"):
        temp_id = entry["temp_id"]
        if not _is_int(temp_id) or temp_id <= 0:
            _fail(
                _join(path, "temp_id"),
                "must be a positive integer JSMS template id",
                SMS_TEMPLATE_ID_ILLEGAL,
            )
        _object(_required(entry, "temp_para", path), _join(path, "temp_para"))
        # The seed types sign_id as a string ("1"), the JSMS API as an int: take both.
        if _present(entry, "sign_id") and not (
            _is_int(entry["sign_id"]) or isinstance(entry["sign_id"], str)
        ):
            _fail(_join(path, "sign_id"), "must be a string or an integer")
    if _present(entry, "content"):
        _string(entry["content"], _join(path, "content"))


def _check_email(entry: Mapping[str, Any], path: str) -> None:
    _string(_required(entry, "subject", path), _join(path, "subject"))
    _string(_required(entry, "text", path), _join(path, "text"))
    if _present(entry, "files"):
        # Typed "Object Array" in the seed's table but URL strings in its example and
        # in the SDK: accept either kind of item.
        for i, item in enumerate(_array(entry["files"], _join(path, "files"), min_len=0)):
            if not isinstance(item, str | Mapping):
                _fail(f"{path}.files[{i}]", "must be a URL string")


# --------------------------------------------------------------------------- DingTalk


# The seed documents only "text"; DingTalk's other work-notice types share the
# msg.<msgtype> body layout, so they are accepted with that shape check only.
_DINGTALK_OTHER_TYPES: Final = frozenset(
    {"image", "voice", "file", "link", "oa", "markdown", "action_card"}
)


def _check_dingtalk_cc(entry: Mapping[str, Any], path: str) -> None:
    msg_path = _join(path, "msg")
    msg = _object(_required(entry, "msg", path), msg_path)
    msgtype = _string(_required(msg, "msgtype", msg_path), _join(msg_path, "msgtype"))
    if msgtype == "text":
        text = _object(_required(msg, "text", msg_path), _join(msg_path, "text"))
        _string(
            _required(text, "content", _join(msg_path, "text")), _join(msg_path, "text.content")
        )
    elif msgtype in _DINGTALK_OTHER_TYPES:
        _object(_required(msg, msgtype, msg_path), _join(msg_path, msgtype))
    else:
        _fail(_join(msg_path, "msgtype"), f"unknown DingTalk message type {msgtype!r}")


# --------------------------------------------------------------------------- WeCom


def _wk_text(body: Mapping[str, Any], path: str) -> None:
    _string(_required(body, "content", path), _join(path, "content"), max_bytes=2048)


def _wk_media(body: Mapping[str, Any], path: str) -> None:
    _string(_required(body, "media_id", path), _join(path, "media_id"))


def _wk_news(body: Mapping[str, Any], path: str) -> None:
    articles = _array(_required(body, "articles", path), _join(path, "articles"), max_len=8)
    for i, item in enumerate(articles):
        at = f"{path}.articles[{i}]"
        article = _object(item, at)
        _string(_required(article, "title", at), _join(at, "title"), max_bytes=128)
        _optional_string(article, "description", at, max_bytes=512)
        _optional_string(article, "url", at, max_bytes=2048)
        _optional_string(article, "picurl", at)
        _optional_string(article, "appid", at)
        _optional_string(article, "pagepath", at)
        if _present(article, "appid") != _present(article, "pagepath"):
            _fail(
                _join(at, "pagepath" if _present(article, "appid") else "appid"),
                "appid and pagepath go together",
            )
        if not _present(article, "url") and not _present(article, "appid"):
            _fail(_join(at, "url"), "a url or a miniprogram appid + pagepath is required")


def _wk_mpnews(body: Mapping[str, Any], path: str) -> None:
    articles = _array(_required(body, "articles", path), _join(path, "articles"), max_len=8)
    for i, item in enumerate(articles):
        at = f"{path}.articles[{i}]"
        article = _object(item, at)
        _string(_required(article, "thumb_media_id", at), _join(at, "thumb_media_id"))
        _string(_required(article, "title", at), _join(at, "title"), max_bytes=128)
        _string(_required(article, "content", at), _join(at, "content"), max_bytes=666 * 1024)
        _optional_string(article, "digest", at, max_bytes=512)
        _optional_string(article, "author", at, max_bytes=64)
        _optional_string(article, "content_source_url", at)


def _wk_miniprogram_notice(body: Mapping[str, Any], path: str) -> None:
    # Title, description and item lengths are "Chinese characters" limits that WeCom
    # applies after id translation; they cannot be counted here, so they are not checked.
    _string(_required(body, "appid", path), _join(path, "appid"))
    _string(_required(body, "title", path), _join(path, "title"))
    _optional_string(body, "page", path)
    _optional_string(body, "description", path)
    emphasis = body.get("emphasis_first_item")
    if emphasis is not None and not isinstance(emphasis, bool | str):
        _fail(_join(path, "emphasis_first_item"), "must be true or false")
    if _present(body, "content_item"):
        items = _array(body["content_item"], _join(path, "content_item"), min_len=0, max_len=10)
        for i, item in enumerate(items):
            at = f"{path}.content_item[{i}]"
            pair = _object(item, at)
            _string(_required(pair, "key", at), _join(at, "key"))
            _string(_required(pair, "value", at), _join(at, "value"), allow_empty=True)


def _wk_body_object(body: Mapping[str, Any], path: str) -> None:
    """Other WeCom message types: the seed documents none of their fields."""


# The six types the seed documents, then WeCom's other types, which UMS may forward
# as-is ("supported types include"): for those only the body object is required.
_WECHATWK_BODIES: Final[Mapping[str, Callable[[Mapping[str, Any], str], None]]] = {
    "text": _wk_text,
    "image": _wk_media,
    "file": _wk_media,
    "news": _wk_news,
    "mpnews": _wk_mpnews,
    "miniprogram_notice": _wk_miniprogram_notice,
    "voice": _wk_body_object,
    "video": _wk_body_object,
    "textcard": _wk_body_object,
    "markdown": _wk_body_object,
    "template_card": _wk_body_object,
}


def _check_wechatwk(entry: Mapping[str, Any], path: str) -> None:
    # The seed's tables list the body fields flat, but its examples (and WeCom's API)
    # nest them under the msgtype key: {"msgtype": "text", "text": {"content": ...}}.
    msgtype = _string(_required(entry, "msgtype", path), _join(path, "msgtype"))
    check_body = _WECHATWK_BODIES.get(msgtype)
    if check_body is None:
        _fail(
            _join(path, "msgtype"), f"must be one of {', '.join(_WECHATWK_BODIES)}, got {msgtype!r}"
        )
    body = _object(_required(entry, msgtype, path), _join(path, msgtype))
    check_body(body, _join(path, msgtype))
    if _present(entry, "safe"):
        _integer(entry["safe"], _join(path, "safe"), choices=(0, 1, 2))
    if _present(entry, "enable_duplicate_check"):
        _integer(
            entry["enable_duplicate_check"], _join(path, "enable_duplicate_check"), choices=(0, 1)
        )
    if _present(entry, "duplicate_check_interval"):
        field = _join(path, "duplicate_check_interval")
        interval = entry["duplicate_check_interval"]
        # Typed int in some of the seed's tables and String in others: take both.
        if isinstance(interval, str) and interval.isdecimal():
            interval = int(interval)
        if not _is_int(interval) or not 0 < interval <= MAX_WECHATWK_DUPLICATE_CHECK_SECONDS:
            _fail(field, f"must be 1-{MAX_WECHATWK_DUPLICATE_CHECK_SECONDS} seconds (4 hours)")


# One rule per channel: msg_xxx -> check of one entry of its array.
CHANNEL_RULES: Final[Mapping[str, Callable[[Mapping[str, Any], str], None]]] = {
    "msg_app": _check_app,
    "msg_wechatoa": _check_wechatoa,
    "msg_wechatmp": _check_wechatmp,
    "msg_sms": _check_sms,
    "msg_email": _check_email,
    "msg_alipay_life": _check_alipay_life,
    "msg_dingtalk_cc": _check_dingtalk_cc,
    "msg_wechatwk": _check_wechatwk,
}


# --------------------------------------------------------------------------- top level


def _check_keys(message: Mapping[str, Any], kind: SendKind) -> None:
    allowed = _COMMON_KEYS | (_TEMPLATE_KEYS if kind.is_template else frozenset())
    for key in sorted(message, key=str):
        name = str(key)
        if name.startswith("msg_") and kind.is_template:
            _fail(name, "a template send takes no msg_xxx content", MSG_IN_TEMPLATE_SEND)
        if name in allowed or name in AUDIENCES or name in CHANNEL_RULES:
            continue
        if name.startswith("msg_"):
            linked = name == "msg_wechatwk_linkedcorp"
            _fail(
                name, "unknown channel" + (" (linked corps share msg_wechatwk)" if linked else "")
            )
        if name.startswith("aud_"):
            _fail(name, "unknown audience")
        _fail(name, "unknown field")


def _check_template_fields(message: Mapping[str, Any]) -> None:
    template_id = _required(message, "template_id", "")
    if not _is_int(template_id) or template_id <= 0:
        _fail("template_id", "must be a positive integer")
    # providers.md: the doc marks template_para required, the SDK optional; a template
    # without variables needs none, so it is optional here.
    if _present(message, "template_para"):
        _object(message["template_para"], "template_para")
    if _present(message, "app_para"):
        app_para = _object(message["app_para"], "app_para")
        if not _present(app_para, "platform"):
            _fail("app_para.platform", "is required", APP_PLATFORM_MISSING)
        _platform(app_para["platform"], "app_para.platform", _APP_PARA_PLATFORMS)
        if _present(app_para, "time_to_live"):
            ttl = _integer(app_para["time_to_live"], "app_para.time_to_live")
            if not 0 <= ttl <= MAX_APP_TTL_SECONDS:
                _fail("app_para.time_to_live", f"must be 0-{MAX_APP_TTL_SECONDS} seconds (10 days)")
        if _present(app_para, "apns_production") and not isinstance(
            app_para["apns_production"], bool
        ):
            _fail("app_para.apns_production", "must be true or false")


def _check_tags(value: Any) -> None:
    tags = _array(value, "aud_tag", max_len=MAX_TAGS)
    for i, tag in enumerate(tags):
        field = f"aud_tag[{i}]"
        _string(tag, field, max_bytes=MAX_TAG_BYTES)
        if not _TAG_RE.fullmatch(tag):
            _fail(field, f"only letters, digits, Chinese and {_SPECIALS} are allowed")


def _check_userids(value: Any, max_ids: int | None) -> None:
    userids = _array(value, "aud_userid")
    if max_ids is not None and len(userids) > max_ids:
        _fail(
            "aud_userid",
            f"at most {max_ids} userids per request, got {len(userids)}",
            TOO_MANY_USERIDS,
        )
    for i, userid in enumerate(userids):
        field = f"aud_userid[{i}]"
        _string(userid, field, max_chars=MAX_USERID_CHARS)
        if not _USERID_RE.fullmatch(userid):
            _fail(field, f"only letters, digits and {_SPECIALS} are allowed")


def _check_segment(value: Any) -> None:
    segments = _array(value, "aud_segment", max_len=1)
    _string(segments[0], "aud_segment[0]")


def _custom_ids(value: Any, key: str) -> list[list[str]]:
    """The id lists of a custom channel target: [{"instance"?, "data": [ids]}, ...]."""
    out: list[list[str]] = []
    for i, item in enumerate(_array(value, key)):
        at = f"{key}[{i}]"
        entry = _object(item, at)
        # instance is a reserved field UMS ignores; only its type is checked.
        _optional_string(entry, "instance", at)
        data = _array(_required(entry, "data", at), f"{at}.data")
        for j, ident in enumerate(data):
            _string(ident, f"{at}.data[{j}]")
        out.append(data)
    return out


def _check_audience(message: Mapping[str, Any], kind: SendKind, max_ids: int | None) -> None:
    present = [key for key in AUDIENCES if key in message]
    if kind.is_broadcast:
        if present:
            _fail(present[0], "a broadcast takes no audience")
        return
    if not present:
        _fail("aud_*", "a targeted send needs an audience (aud_userid, aud_tag, ...)")
    users = [key for key in present if key in USER_AUDIENCES]
    customs = [key for key in present if key in CUSTOM_AUDIENCES]
    if users and customs:
        _fail(customs[0], f"custom channel targets cannot be mixed with {users[0]}")
    # The seed forbids only mixing custom ids with user targets; tag, userid and
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
            _fail(key, f"at most {max_ids} ids per channel per request, got {total}")


def _check_contents(message: Mapping[str, Any]) -> None:
    channels = [key for key in MSG_CHANNELS if key in message]
    if not channels:
        _fail("msg_*", "at least one msg_xxx channel content is required")
    entries = {key: _array(message[key], key) for key in channels}
    customs = [key for key in CUSTOM_AUDIENCES if key in message]
    if customs:
        for aud in customs:
            if MSG_FOR_AUDIENCE[aud] not in message:
                _fail(MSG_FOR_AUDIENCE[aud], f"is required: {aud} has no content")
        for msg in channels:
            if not any(MSG_FOR_AUDIENCE[aud] == msg for aud in customs):
                auds = " or ".join(a for a, m in MSG_FOR_AUDIENCE.items() if m == msg)
                _fail(msg, f"custom targets are used but there is no {auds}")
    for key in channels:
        for i, item in enumerate(entries[key]):
            CHANNEL_RULES[key](_object(item, f"{key}[{i}]"), f"{key}[{i}]")


def _check_rule_id(message: Mapping[str, Any]) -> None:
    if _present(message, "rule_id"):
        rule_id = _integer(message["rule_id"], "rule_id")
        if rule_id < 0:
            _fail("rule_id", "must not be negative (0 = no send strategy)")


def _check_option(message: Mapping[str, Any]) -> None:
    if not _present(message, "option"):
        return
    # Unknown option keys are let through: the seed says "currently contains".
    option = _object(message["option"], "option")
    _optional_string(option, "sendno", "option")
    _optional_string(option, "owner", "option")
    for key in ("black_id", "white_id"):
        if _present(option, key):
            _integer(option[key], f"option.{key}")
    if _present(option, "black_id") and _present(option, "white_id"):
        _fail("option.white_id", "black_id and white_id cannot both be given", BLACK_AND_WHITE_ID)
    if _present(option, "priority"):
        _integer(option["priority"], "option.priority", choices=(1, 2, 3))


def _check_callback(message: Mapping[str, Any]) -> None:
    if not _present(message, "callback"):
        return
    callback = _object(message["callback"], "callback")
    if _present(callback, "url"):
        url = _string(callback["url"], "callback.url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            _fail("callback.url", "must be an http(s) URL")
    if _present(callback, "params"):
        _object(callback["params"], "callback.params")


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
    _object(message, "message")
    _check_keys(message, kind)
    if kind.is_template:
        _check_template_fields(message)
    _check_audience(message, kind, max_ids)
    if not kind.is_template:
        _check_contents(message)
    _check_rule_id(message)
    _check_option(message)
    _check_callback(message)


# --------------------------------------------------------------------------- splitting


def _chunks(items: Sequence[Any], size: int) -> list[list[Any]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _assemble(
    message: Mapping[str, Any], audience: Mapping[str, Any], channels: set[str] | None
) -> dict[str, Any]:
    """A deep copy of message with its audience replaced; channels=None keeps every msg_xxx."""
    part: dict[str, Any] = {}
    for key, value in message.items():
        if key in AUDIENCES:
            if key in audience:
                part[key] = audience[key]
        elif key in MSG_CHANNELS and channels is not None:
            if key in channels:
                part[key] = copy.deepcopy(value)
        else:
            part[key] = copy.deepcopy(value)
    return part


def _custom_chunks(entries: list[Any], limit: int) -> list[list[dict[str, Any]]]:
    """Cut one custom channel's [{instance, data}] into parts of at most limit ids."""
    flat: list[tuple[int, str]] = []
    for i, entry in enumerate(entries):
        flat.extend((i, ident) for ident in entry["data"])
    parts: list[list[dict[str, Any]]] = []
    for chunk in _chunks(flat, limit):
        rebuilt: list[dict[str, Any]] = []
        last = -1
        for source, ident in chunk:
            if source != last:
                extra = {k: copy.deepcopy(v) for k, v in entries[source].items() if k != "data"}
                rebuilt.append({**extra, "data": []})
                last = source
            rebuilt[-1]["data"].append(ident)
        parts.append(rebuilt)
    return parts or [copy.deepcopy(entries)]


def split_message(message: Mapping[str, Any], *, limit: int = MAX_IDS) -> list[dict[str, Any]]:
    """Cut a message whose aud_userid or custom-channel ids exceed limit into valid parts."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    _object(message, "message")
    users = [key for key in USER_AUDIENCES if key in message]
    customs = [key for key in CUSTOM_AUDIENCES if key in message]
    if users and customs:
        _fail(customs[0], f"custom channel targets cannot be mixed with {users[0]}")

    if "aud_userid" in message:
        userids = _array(message["aud_userid"], "aud_userid", min_len=0)
        if len(userids) <= limit:
            return [copy.deepcopy(dict(message))]
        parts = []
        for n, chunk in enumerate(_chunks(userids, limit)):
            audience: dict[str, Any] = {"aud_userid": chunk}
            if n == 0:
                # Tags and segments cannot be cut; they go with the first part only so
                # that their users are not sent the message once per part.
                audience.update(
                    {
                        k: copy.deepcopy(message[k])
                        for k in ("aud_tag", "aud_segment")
                        if k in message
                    }
                )
            parts.append(_assemble(message, audience, None))
        return parts

    if customs:
        per_channel: dict[str, list[list[dict[str, Any]]]] = {}
        for key in customs:
            entries = _array(message[key], key, min_len=0)
            for i, entry in enumerate(entries):
                _array(_object(entry, f"{key}[{i}]").get("data"), f"{key}[{i}].data", min_len=0)
            per_channel[key] = _custom_chunks(entries, limit)
        count = max(len(chunks) for chunks in per_channel.values())
        if count == 1:
            return [copy.deepcopy(dict(message))]
        parts = []
        for n in range(count):
            audience = {key: chunks[n] for key, chunks in per_channel.items() if n < len(chunks)}
            # A part keeps only the msg_xxx of the channels it targets: with custom
            # targets a msg_xxx without its aud_xxx is refused.
            channels = {MSG_FOR_AUDIENCE[key] for key in audience}
            parts.append(_assemble(message, audience, channels))
        return parts

    return [copy.deepcopy(dict(message))]


# --------------------------------------------------------------------------- personalising


PLACEHOLDER_RE: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
PERSONAL_AUDIENCES: Final = ("aud_userid",) + CUSTOM_AUDIENCES


def _value_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if _is_int(value) or isinstance(value, float):
        return str(value)
    _fail(field, "must be a string or a number")


def _render(node: Any, values: Mapping[str, Any], index: int, rendered: list[str]) -> Any:
    """Copy node with each string's {placeholders} filled in; rendered collects the results."""
    if isinstance(node, str):
        if not PLACEHOLDER_RE.search(node):
            return node

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            field = f"recipients[{index}].values.{name}"
            if name not in values:
                _fail(field, f"no value for placeholder {{{name}}}")
            return _value_text(values[name], field)

        # One pass of re.sub: text coming from a value is never scanned again.
        text = PLACEHOLDER_RE.sub(fill, node)
        rendered.append(text)
        return text
    if isinstance(node, Mapping):
        return {key: _render(value, values, index, rendered) for key, value in node.items()}
    if isinstance(node, list | tuple):
        return [_render(value, values, index, rendered) for value in node]
    return copy.deepcopy(node)


def _recipient(item: Any, index: int) -> tuple[str, str, Mapping[str, Any]]:
    at = f"recipients[{index}]"
    recipient = _object(item, at)
    to = _object(_required(recipient, "to", at), f"{at}.to")
    if len(to) != 1 or next(iter(to)) not in PERSONAL_AUDIENCES:
        _fail(f"{at}.to", "must be exactly one of aud_userid or a custom channel (aud_sms, ...)")
    key = next(iter(to))
    ident = _string(to[key], f"{at}.to.{key}")
    values = _object(recipient.get("values") or {}, f"{at}.values")
    return key, ident, values


def render_personalised(
    template: Mapping[str, Any], recipients: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Render one message per distinct content and group the recipients who share it.

    ``template`` is a UMS message without aud_xxx (msg_xxx, rule_id, option, callback, or
    template_id/template_para for a template send) in which any string value (not keys)
    may hold ``{name}`` placeholders, ``name`` being an identifier; other braces are kept
    as they are. ``recipients`` is a list of
    ``{"to": {"aud_userid": "u1"}, "values": {"name": "Tom"}}``, where ``to`` names one
    recipient by aud_userid or by one custom channel id (``{"aud_sms": "138..."}``), the
    same kind for every recipient, and ``values`` maps placeholders to strings or numbers.

    Returns messages in order of first appearance, each with every id (first occurrence,
    duplicates dropped) whose rendered content is identical: ``aud_userid: [ids]``, or
    ``aud_xxx: [{"data": [ids]}]`` for a custom channel. A placeholder without a value
    raises InvalidMessageError on ``recipients[i].values.<name>`` before anything is returned.
    Each message still goes through split_message and validate_message.
    """
    _object(template, "template")
    for key in template:
        if key in AUDIENCES:
            _fail(f"template.{key}", "the audience comes from recipients[].to")
    if isinstance(recipients, str | bytes) or not isinstance(recipients, Sequence):
        _fail("recipients", "must be an array")
    if not recipients:
        _fail("recipients", "at least one recipient is required")

    audience_key: str | None = None
    groups: dict[tuple[str, ...], tuple[dict[str, Any], dict[str, None]]] = {}
    for index, item in enumerate(recipients):
        key, ident, values = _recipient(item, index)
        if audience_key is None:
            audience_key = key
        elif key != audience_key:
            _fail(f"recipients[{index}].to", f"every recipient must use {audience_key}")
        rendered: list[str] = []
        message = _render(template, values, index, rendered)
        # Every recipient's message has the template's shape, so the rendered strings
        # alone tell whether two contents are identical.
        # A dict keeps the ids in first-seen order and drops repeats in O(1).
        groups.setdefault(tuple(rendered), (message, {}))[1].setdefault(ident, None)

    assert audience_key is not None
    out: list[dict[str, Any]] = []
    for message, seen in groups.values():
        ids = list(seen)
        audience: Any = ids if audience_key == "aud_userid" else [{"data": ids}]
        out.append({audience_key: audience, **message})
    return out
