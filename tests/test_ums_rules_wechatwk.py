"""UMS rules of msg_wechatwk, WeCom messages (sender/ums/rules/wechatwk.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ums_examples import (
    DOC_WECHATWK_FILE,
    DOC_WECHATWK_IMAGE,
    DOC_WECHATWK_MINIPROGRAM,
    DOC_WECHATWK_MPNEWS,
    DOC_WECHATWK_NEWS,
    DOC_WECHATWK_TEXT,
    DROP,
    case,
    changed,
    with_msg,
)

VALID = [
    pytest.param("sent", with_msg("wechatwk", DOC_WECHATWK_TEXT), id="doc-wechatwk-text"),
    pytest.param("sent", with_msg("wechatwk", DOC_WECHATWK_IMAGE), id="doc-wechatwk-image"),
    pytest.param("sent", with_msg("wechatwk", DOC_WECHATWK_FILE), id="doc-wechatwk-file"),
    pytest.param("sent", with_msg("wechatwk", DOC_WECHATWK_NEWS), id="doc-wechatwk-news"),
    pytest.param("sent", with_msg("wechatwk", DOC_WECHATWK_MPNEWS), id="doc-wechatwk-mpnews"),
    pytest.param(
        "sent", with_msg("wechatwk", DOC_WECHATWK_MINIPROGRAM), id="doc-wechatwk-miniprogram"
    ),
    pytest.param(
        "sent",
        with_msg(
            "wechatwk",
            changed(
                DOC_WECHATWK_TEXT,
                text={"content": "字" * 682 + "ab"},  # 2048 UTF-8 bytes exactly
                duplicate_check_interval=4 * 3600,
            ),
        ),
        id="wechatwk-text-2048-bytes-4-hours",
    ),
    pytest.param(
        "sent",
        with_msg(
            "wechatwk",
            {
                "msgtype": "news",
                "news": {"articles": [{"title": "t", "appid": "a", "pagepath": "p"}]},
            },
        ),
        id="wechatwk-news-miniprogram-jump",
    ),
    # safe 2 (inside the corp only) is in the page's tables of these two types.
    pytest.param(
        "sent",
        with_msg("wechatwk", changed(DOC_WECHATWK_MPNEWS, safe=2)),
        id="wechatwk-mpnews-safe-2",
    ),
    pytest.param(
        "sent",
        with_msg("wechatwk", changed(DOC_WECHATWK_MINIPROGRAM, safe=2)),
        id="wechatwk-miniprogram-safe-2",
    ),
    # As the Go SDK sends an entry: safe and enable_duplicate_check always, 0 included.
    pytest.param(
        "sent",
        with_msg(
            "wechatwk",
            {
                "msgtype": "image",
                "image": {"media_id": "m"},
                "safe": 0,
                "enable_duplicate_check": 0,
            },
        ),
        id="wechatwk-sdk-zero-flags",
    ),
]


def wk(**changes: Any) -> dict[str, Any]:
    return with_msg("wechatwk", changed(DOC_WECHATWK_TEXT, **changes))


INVALID = [
    case("wechatwk-msgtype-missing", wk(msgtype=DROP), "msg_wechatwk[0].msgtype"),
    case("wechatwk-msgtype-unknown", wk(msgtype="fax"), "msg_wechatwk[0].msgtype"),
    case("wechatwk-body-missing", wk(text=DROP), "msg_wechatwk[0].text"),
    case("wechatwk-flat-content", wk(text=DROP, content="hi"), "msg_wechatwk[0].text"),
    case(
        "wechatwk-content-2049-bytes",
        wk(text={"content": "字" * 683}),
        "msg_wechatwk[0].text.content",
    ),
    case(
        "wechatwk-duplicate-interval-over-4h",
        wk(duplicate_check_interval=4 * 3600 + 1),
        "msg_wechatwk[0].duplicate_check_interval",
    ),
    case("wechatwk-safe-3", wk(safe=3), "msg_wechatwk[0].safe"),
    *(
        case(
            f"wechatwk-{name}-safe-2",
            with_msg("wechatwk", changed(doc, safe=2)),
            "msg_wechatwk[0].safe",
        )
        for name, doc in (
            ("text", DOC_WECHATWK_TEXT),
            ("image", DOC_WECHATWK_IMAGE),
            ("file", DOC_WECHATWK_FILE),
            ("news", DOC_WECHATWK_NEWS),
        )
    ),
    # WeCom's own types that neither the page nor the Go SDK lists.
    *(
        case(
            f"wechatwk-{msgtype}-undocumented",
            with_msg("wechatwk", {"msgtype": msgtype, msgtype: {"title": "t"}}),
            "msg_wechatwk[0].msgtype",
        )
        for msgtype in ("textcard", "markdown", "voice", "video", "template_card")
    ),
    case(
        "wechatwk-duplicate-check-2",
        wk(enable_duplicate_check=2),
        "msg_wechatwk[0].enable_duplicate_check",
    ),
    case(
        "wechatwk-image-media_id-missing",
        with_msg("wechatwk", {"msgtype": "image", "image": {}}),
        "msg_wechatwk[0].image.media_id",
    ),
    case(
        "wechatwk-news-9-articles",
        with_msg(
            "wechatwk", {"msgtype": "news", "news": {"articles": [{"title": "t", "url": "u"}] * 9}}
        ),
        "msg_wechatwk[0].news.articles",
    ),
    case(
        "wechatwk-news-no-jump",
        with_msg("wechatwk", {"msgtype": "news", "news": {"articles": [{"title": "t"}]}}),
        "msg_wechatwk[0].news.articles[0].url",
    ),
    case(
        "wechatwk-news-appid-alone",
        with_msg(
            "wechatwk", {"msgtype": "news", "news": {"articles": [{"title": "t", "appid": "a"}]}}
        ),
        "msg_wechatwk[0].news.articles[0].pagepath",
    ),
    case(
        "wechatwk-news-title-129-bytes",
        with_msg(
            "wechatwk",
            {"msgtype": "news", "news": {"articles": [{"title": "t" * 129, "url": "u"}]}},
        ),
        "msg_wechatwk[0].news.articles[0].title",
    ),
    case(
        "wechatwk-mpnews-thumb-missing",
        with_msg(
            "wechatwk",
            {"msgtype": "mpnews", "mpnews": {"articles": [{"title": "t", "content": "c"}]}},
        ),
        "msg_wechatwk[0].mpnews.articles[0].thumb_media_id",
    ),
    case(
        "wechatwk-miniprogram-11-items",
        with_msg(
            "wechatwk",
            {
                "msgtype": "miniprogram_notice",
                "miniprogram_notice": {
                    "appid": "a",
                    "title": "t",
                    "content_item": [{"key": "k", "value": "v"}] * 11,
                },
            },
        ),
        "msg_wechatwk[0].miniprogram_notice.content_item",
    ),
]
