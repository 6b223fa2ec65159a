"""The rules of ``msg_wechatwk``: WeCom (企业微信) application messages.

From UMS's page 普通消息发送 v1 (Ordinary message sending v1), section "msg_wechatwk",
checked against the public Go SDK cavlabs/jiguang-sdk-go (``api/jums/message``, the
``Wechatwk`` struct):

- Six message types, named by ``msgtype``, whose body sits under the key of the same
  name (``{"msgtype": "text", "text": {"content": ...}}``, as in the page's examples,
  the SDK's struct and WeCom's own API; the page's tables list the body fields flat):
  ``text``: ``content``, at most 2048 bytes; ``image`` and ``file``: ``media_id``;
  ``news``: 1-8 ``articles``, each a ``title`` (at most 128 bytes), optional
  ``description`` (512 bytes), ``url`` (2048 bytes) and ``picurl``, and a mini program
  jump ``appid`` + ``pagepath`` (both or neither), with a ``url`` or a jump required;
  ``mpnews``: 1-8 ``articles``, each ``thumb_media_id``, ``title`` (128 bytes),
  ``content`` (666 KB), optional ``digest`` (512 bytes), ``author`` (64 bytes) and
  ``content_source_url``; ``miniprogram_notice``: ``appid`` and ``title``, optional
  ``page``, ``description``, ``emphasis_first_item`` and at most 10 ``content_item``
  ``{key, value}`` pairs.
- No other type: the page lists these six, and the SDK has a constant for each and
  refuses any other ``msgtype`` (``Wechatwk.Validate``). WeCom's own API has more
  (textcard, markdown, voice, video, template_card); UMS documents none of them.
- Beside the body: ``safe`` 0 (shareable) or 1 (watermarked), and for ``mpnews`` and
  ``miniprogram_notice`` also 2 (inside the corp only): the page's tables give 2 for
  those two types only, the SDK 0 or 1 for every type. ``enable_duplicate_check`` 0 or
  1; ``duplicate_check_interval`` in seconds, default 1800, at most 4 hours.
- Users of linked corps (``aud_wechatwk_linkedcorp``) get the same ``msg_wechatwk``.

Every failure here answers business code 4004 (invalid parameter).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ...values import is_int
from .checks import (
    as_array,
    as_integer,
    as_object,
    as_string,
    fail,
    join,
    optional_string,
    present,
    required,
)

MAX_WECHATWK_DUPLICATE_CHECK_SECONDS: Final = 4 * 3600
_MAX_ARTICLES: Final = 8
_MAX_CONTENT_ITEMS: Final = 10


def _text(body: Mapping[str, Any], path: str) -> None:
    as_string(required(body, "content", path), join(path, "content"), max_bytes=2048)


def _media(body: Mapping[str, Any], path: str) -> None:
    as_string(required(body, "media_id", path), join(path, "media_id"))


def _news(body: Mapping[str, Any], path: str) -> None:
    articles = as_array(
        required(body, "articles", path), join(path, "articles"), max_len=_MAX_ARTICLES
    )
    for i, item in enumerate(articles):
        at = f"{path}.articles[{i}]"
        article = as_object(item, at)
        as_string(required(article, "title", at), join(at, "title"), max_bytes=128)
        optional_string(article, "description", at, max_bytes=512)
        optional_string(article, "url", at, max_bytes=2048)
        optional_string(article, "picurl", at)
        optional_string(article, "appid", at)
        optional_string(article, "pagepath", at)
        if present(article, "appid") != present(article, "pagepath"):
            fail(
                join(at, "pagepath" if present(article, "appid") else "appid"),
                "appid and pagepath go together",
            )
        if not present(article, "url") and not present(article, "appid"):
            fail(join(at, "url"), "a url or a miniprogram appid + pagepath is required")


def _mpnews(body: Mapping[str, Any], path: str) -> None:
    articles = as_array(
        required(body, "articles", path), join(path, "articles"), max_len=_MAX_ARTICLES
    )
    for i, item in enumerate(articles):
        at = f"{path}.articles[{i}]"
        article = as_object(item, at)
        as_string(required(article, "thumb_media_id", at), join(at, "thumb_media_id"))
        as_string(required(article, "title", at), join(at, "title"), max_bytes=128)
        as_string(required(article, "content", at), join(at, "content"), max_bytes=666 * 1024)
        optional_string(article, "digest", at, max_bytes=512)
        optional_string(article, "author", at, max_bytes=64)
        optional_string(article, "content_source_url", at)


def _miniprogram_notice(body: Mapping[str, Any], path: str) -> None:
    # Title, description and item lengths are "Chinese characters" limits that WeCom
    # applies after id translation; they cannot be counted here, so they are not checked.
    as_string(required(body, "appid", path), join(path, "appid"))
    as_string(required(body, "title", path), join(path, "title"))
    optional_string(body, "page", path)
    optional_string(body, "description", path)
    emphasis = body.get("emphasis_first_item")
    # Typed String in the page's table, a bool in its example: take both.
    if emphasis is not None and not isinstance(emphasis, bool | str):
        fail(join(path, "emphasis_first_item"), "must be true or false")
    if present(body, "content_item"):
        items = as_array(
            body["content_item"],
            join(path, "content_item"),
            min_len=0,
            max_len=_MAX_CONTENT_ITEMS,
        )
        for i, item in enumerate(items):
            at = f"{path}.content_item[{i}]"
            pair = as_object(item, at)
            as_string(required(pair, "key", at), join(at, "key"))
            as_string(required(pair, "value", at), join(at, "value"), allow_empty=True)


_BODIES: Final[Mapping[str, Callable[[Mapping[str, Any], str], None]]] = {
    "text": _text,
    "image": _media,
    "file": _media,
    "news": _news,
    "mpnews": _mpnews,
    "miniprogram_notice": _miniprogram_notice,
}
# The types whose table on the page lets safe be 2 (shared inside the corp only).
_CORP_ONLY_TYPES: Final = frozenset({"mpnews", "miniprogram_notice"})


def check_wechatwk(entry: Mapping[str, Any], path: str) -> None:
    """Fail on the first field of one ``msg_wechatwk`` entry that UMS would refuse."""
    msgtype = as_string(required(entry, "msgtype", path), join(path, "msgtype"))
    check_body = _BODIES.get(msgtype)
    if check_body is None:
        fail(join(path, "msgtype"), f"must be one of {', '.join(_BODIES)}, got {msgtype!r}")
    body = as_object(required(entry, msgtype, path), join(path, msgtype))
    check_body(body, join(path, msgtype))
    if present(entry, "safe"):
        safe = (0, 1, 2) if msgtype in _CORP_ONLY_TYPES else (0, 1)
        as_integer(entry["safe"], join(path, "safe"), choices=safe)
    if present(entry, "enable_duplicate_check"):
        as_integer(
            entry["enable_duplicate_check"], join(path, "enable_duplicate_check"), choices=(0, 1)
        )
    if present(entry, "duplicate_check_interval"):
        field = join(path, "duplicate_check_interval")
        interval = entry["duplicate_check_interval"]
        # Typed int in some of the page's tables and String in others: take both.
        if isinstance(interval, str) and interval.isdecimal():
            interval = int(interval)
        if not is_int(interval) or not 0 < interval <= MAX_WECHATWK_DUPLICATE_CHECK_SECONDS:
            fail(field, f"must be 1-{MAX_WECHATWK_DUPLICATE_CHECK_SECONDS} seconds (4 hours)")
