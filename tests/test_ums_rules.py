"""UMS message rules: validation, splitting and personalised rendering (sender/ums_rules.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sender.errors import InvalidMessageError
from sender.ums.protocol import SendKind
from sender.ums.rules import render_personalised, split_message, validate_message

DROP = object()  # marks a key to remove in `changed`


def changed(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of base with top-level keys replaced, added or (with DROP) removed."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def userids(count: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def custom(*ids: Any, instance: str | None = None) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {"data": list(ids)}
    if instance is not None:
        entry["instance"] = instance
    return [entry]


# --------------------------------------------------------------------------- seed examples
# The seed page's JSON examples, with their syntax slips fixed (trailing and missing
# commas in msg_app).

SEED_REQUEST: dict[str, Any] = {
    "aud_userid": ["user1", "user2"],
    "msg_app": [{"platform": "android", "notification": {"android": {"alert": "Hi,JPush !"}}}],
    "rule_id": 1001,
    "option": {"sendno": "test", "owner": "admin", "black_id": 1234, "priority": 2},
    "callback": {"url": "https://www.jiguang.cn/ums-portal", "params": {"name": "joe", "age": 26}},
}

SEED_APP: dict[str, Any] = {
    "cid": "8103a4c628a0b98974ec1949-711261d4-5f17-4d2f-a855-5e5a8909b26e",
    "platform": "all",
    "notification": {
        "android": {
            "alert": "Hi, JPush!",
            "title": "Send to Android",
            "builder_id": 1,
            "large_icon": "http://www.jiguang.cn/largeIcon.jpg",
            "intent": {
                "url": "intent:#Intent;component=com.jiguang.push/"
                "com.example.jpushdemo.SettingActivity;end"
            },
            "extras": {"newsid": 321},
        },
        "ios": {
            "alert": "Hi, JPush!",
            "sound": "default",
            "badge": "+1",
            "thread-id": "default",
            "extras": {"newsid": 321},
        },
        "quickapp": {"alert": "Hi, JPush!", "title": "Send to QuickApp", "page": "/page1"},
    },
    "message": {
        "msg_content": "Hi,JPush",
        "content_type": "text",
        "title": "msg",
        "extras": {"key": "value"},
    },
    "options": {
        "time_to_live": 60,
        "apns_production": False,
        "apns_collapse_id": "jiguang_test_201706011100",
    },
}

SEED_WECHATOA_TEMPLATE: dict[str, Any] = {
    "type": 0,
    "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
    "url": "http://weixin.qq.com/download",
    "miniprogram": {"appid": "xiaochengxuappid12345", "pagepath": "index?foo=bar"},
    "data": {
        "first": {"value": "恭喜你购买成功!", "color": "#173177"},
        "keyword1": {"value": "巧克力", "color": "#173177"},
        "keyword2": {"value": "39.8元", "color": "#173177"},
        "keyword3": {"value": "2014年9月22日", "color": "#173177"},
        "remark": {"value": "欢迎再次购买!", "color": "#173177"},
    },
}

SEED_WECHATOA_SUBSCRIPTION: dict[str, Any] = {
    "type": 1,
    "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
    "page": "http://weixin.qq.com/download",
    "miniprogram": {"appid": "xiaochengxuappid12345", "pagepath": "index?foo=bar"},
    "data": {
        "name1": {"value": "广州腾讯科技有限公司"},
        "thing8": {"value": "广州腾讯科技有限公司"},
        "time7": {"value": "2019年8月8日"},
    },
}

SEED_WECHATMP: dict[str, Any] = {
    "template_id": "TEMPLATE_ID",
    "page": "index",
    "miniprogram_state": "developer",
    "lang": "zh_CN",
    "data": {
        "number01": {"value": "339208499"},
        "date01": {"value": "2015年01月05日"},
        "site01": {"value": "TIT创意园"},
        "site02": {"value": "广州市新港中路397号"},
    },
}

SEED_SMS_JSMS: dict[str, Any] = {"sign_id": "1", "temp_id": 1, "temp_para": {"code": "1234"}}
SEED_SMS_CMPP: dict[str, Any] = {
    "content": "您登录系统的动态码为:111 ,动态码有效时间为1分钟,请注意保密。"
}
SEED_EMAIL: dict[str, Any] = {
    "subject": "hello, ums email!",
    "text": "ums email test. reply",
    "files": ["填写url1", "填写url2"],
}
SEED_ALIPAY_LIFE: dict[str, Any] = {
    "template_id": "e5326c1d5c71419893646ad9571a93e8",
    "context": {
        "head_color": "#85be53",
        "url": "http://www.baidu.com",
        "action_name": "查看详情",
        "keyword1": {"color": "#85be53", "value": "你已经激活了上火星指令"},
        "keyword2": {"color": "#85be53", "value": "2020 09-29"},
        "first": {"color": "#85be53", "value": "HI.真的 已经激活了指令"},
        "remark": {"color": "#85be53", "value": "指令已经通过"},
    },
}
SEED_DINGTALK: dict[str, Any] = {"msg": {"msgtype": "text", "text": {"content": "test"}}}

_WK_COMMON: dict[str, Any] = {
    "safe": 0,
    "enable_duplicate_check": 1,
    "duplicate_check_interval": 1800,
}
SEED_WECHATWK_TEXT: dict[str, Any] = {
    "msgtype": "text",
    "text": {"content": "你的快递已到,请携带工卡前往邮件中心领取,聪明避开排队。"},
    **_WK_COMMON,
}
SEED_WECHATWK_IMAGE: dict[str, Any] = {
    "msgtype": "image",
    "image": {"media_id": "MEDIA_ID"},
    **_WK_COMMON,
}
SEED_WECHATWK_FILE: dict[str, Any] = {
    "msgtype": "file",
    "file": {"media_id": "1Yv-zXfHjSjU-7LH-GwtYqDGS-zz6w22KmWAT5COgP7o"},
    **_WK_COMMON,
}
SEED_WECHATWK_NEWS: dict[str, Any] = {
    "msgtype": "news",
    "news": {
        "articles": [
            {
                "title": "中秋节礼品领取",
                "description": "今年中秋节公司有豪礼相送",
                "url": "URL",
                "picurl": "http://res.mail.qq.com/node/ww/wwopenmng/images/independent/doc/"
                "test_pic_msg1.png",
            }
        ]
    },
    **_WK_COMMON,
}
SEED_WECHATWK_MPNEWS: dict[str, Any] = {
    "msgtype": "mpnews",
    "mpnews": {
        "articles": [
            {
                "thumb_media_id": "MEDIA_ID",
                "title": "Title",
                "content": "Content",
                "digest": "Digest description",
                "author": "Author",
                "content_source_url": "URL",
            }
        ]
    },
    **_WK_COMMON,
}
SEED_WECHATWK_MINIPROGRAM: dict[str, Any] = {
    "msgtype": "miniprogram_notice",
    "miniprogram_notice": {
        "appid": "wx123123123123123",
        "page": "pages/index?userid=zhangsan&orderid=123123123",
        "title": "会议室预订成功通知",
        "description": "4月27日 16:16",
        "emphasis_first_item": True,
        "content_item": [
            {"key": "会议室", "value": "402"},
            {"key": "会议地点", "value": "广州TIT-402会议室"},
            {"key": "会议时间", "value": "2018年8月1日 09:00-09:30"},
            {"key": "参与人员", "value": "周剑轩"},
        ],
    },
    **_WK_COMMON,
}

SEED_CUSTOM_AUDIENCE: dict[str, Any] = {
    "aud_app": [{"instance": "app", "data": ["170976fa8a9277fac6e"]}],
    "aud_wechatoa": [{"instance": "wechatoa", "data": ["oMtZu6kApZYEPJJWwyIHpWQ2L_DI"]}],
    "aud_wechatmp": [{"instance": "wechatmp", "data": ["oXNQs5B3LGA3xkU7-g2SdK3SsUaw"]}],
    "aud_sms": [{"instance": "sms", "data": ["18866007799"]}],
    "aud_email": [{"instance": "email", "data": ["support@jiguang.cn"]}],
    "aud_alipay_life": [{"instance": "alipaylife", "data": ["2088102733318286"]}],
    "aud_dingtalk_cc": [{"instance": "dingtalkcc", "data": ["a3c213779d163837895b30f47aaa94c3"]}],
    "aud_wechatwk": [{"instance": "wechatwk", "data": ["zhangsan"]}],
    "aud_wechatwk_linkedcorp": [
        {"instance": "wechatwk_linkedcorp", "data": ["CorpId1/userid1", "CorpId2/userid2"]}
    ],
}
SEED_ALL_CONTENTS: dict[str, Any] = {
    "msg_app": [SEED_APP],
    "msg_wechatoa": [SEED_WECHATOA_TEMPLATE],
    "msg_wechatmp": [SEED_WECHATMP],
    "msg_sms": [SEED_SMS_JSMS],
    "msg_email": [SEED_EMAIL],
    "msg_alipay_life": [SEED_ALIPAY_LIFE],
    "msg_dingtalk_cc": [SEED_DINGTALK],
    "msg_wechatwk": [SEED_WECHATWK_TEXT],
}

# A small valid targeted send the failing cases below change one thing in.
BASE: dict[str, Any] = {"aud_userid": ["user1"], "msg_sms": [SEED_SMS_JSMS]}
TEMPLATE_BASE: dict[str, Any] = {
    "aud_userid": ["user1"],
    "template_id": 1001,
    "template_para": {"user": "x", "url": "y"},
}


def with_msg(channel: str, entry: Any) -> dict[str, Any]:
    """BASE with its content replaced by msg_<channel>: [entry]."""
    return changed(BASE, **{"msg_sms": DROP, f"msg_{channel}": [entry]})


def entry_with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return changed(base, **changes)


# --------------------------------------------------------------------------- valid messages

VALID = [
    pytest.param("sent", SEED_REQUEST, id="seed-request-example"),
    pytest.param("sent", with_msg("app", SEED_APP), id="seed-msg_app"),
    pytest.param("sent", with_msg("wechatoa", SEED_WECHATOA_TEMPLATE), id="seed-wechatoa-template"),
    pytest.param(
        "sent", with_msg("wechatoa", SEED_WECHATOA_SUBSCRIPTION), id="seed-wechatoa-subscription"
    ),
    pytest.param("sent", with_msg("wechatmp", SEED_WECHATMP), id="seed-msg_wechatmp"),
    pytest.param("sent", with_msg("sms", SEED_SMS_JSMS), id="seed-msg_sms-jsms"),
    pytest.param("sent", with_msg("sms", SEED_SMS_CMPP), id="seed-msg_sms-cmpp"),
    pytest.param("sent", with_msg("sms", entry_with(SEED_SMS_JSMS, sign_id=7)), id="sms-int-sign"),
    pytest.param("sent", with_msg("email", SEED_EMAIL), id="seed-msg_email"),
    pytest.param("sent", with_msg("alipay_life", SEED_ALIPAY_LIFE), id="seed-msg_alipay_life"),
    pytest.param("sent", with_msg("dingtalk_cc", SEED_DINGTALK), id="seed-msg_dingtalk_cc"),
    pytest.param("sent", with_msg("wechatwk", SEED_WECHATWK_TEXT), id="seed-wechatwk-text"),
    pytest.param("sent", with_msg("wechatwk", SEED_WECHATWK_IMAGE), id="seed-wechatwk-image"),
    pytest.param("sent", with_msg("wechatwk", SEED_WECHATWK_FILE), id="seed-wechatwk-file"),
    pytest.param("sent", with_msg("wechatwk", SEED_WECHATWK_NEWS), id="seed-wechatwk-news"),
    pytest.param("sent", with_msg("wechatwk", SEED_WECHATWK_MPNEWS), id="seed-wechatwk-mpnews"),
    pytest.param(
        "sent", with_msg("wechatwk", SEED_WECHATWK_MINIPROGRAM), id="seed-wechatwk-miniprogram"
    ),
    pytest.param(
        "sent",
        with_msg(
            "wechatwk",
            entry_with(
                SEED_WECHATWK_TEXT,
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
    pytest.param(
        "sent",
        with_msg("app", {"platform": ["android", "ios"], "message": {"msg_content": "hi"}}),
        id="app-platform-list-message-only",
    ),
    pytest.param("sent", {**SEED_CUSTOM_AUDIENCE, **SEED_ALL_CONTENTS}, id="seed-custom-all"),
    pytest.param(
        "sent",
        {
            "aud_wechatwk_linkedcorp": custom("CorpId1/userid1"),
            "msg_wechatwk": [SEED_WECHATWK_TEXT],
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
    pytest.param("broadcast", changed(BASE, aud_userid=DROP), id="broadcast"),
    pytest.param("template_sent", TEMPLATE_BASE, id="template-sent"),
    pytest.param(
        "template_sent",
        changed(
            TEMPLATE_BASE,
            app_para={"platform": ["android", "ios", "quickapp", "web"], "time_to_live": 864000},
            rule_id=0,
            option={"white_id": 3, "priority": 3},
        ),
        id="template-sent-app-para-10-days",
    ),
    pytest.param(
        "template_sent",
        changed(TEMPLATE_BASE, aud_userid=DROP, aud_sms=custom("13800000000")),
        id="template-sent-custom-targets",
    ),
    pytest.param(
        "template_broadcast",
        changed(TEMPLATE_BASE, aud_userid=DROP, app_para={"platform": "all"}),
        id="template-broadcast",
    ),
    pytest.param(SendKind.SENT, BASE, id="kind-as-enum"),
]


@pytest.mark.parametrize(("kind", "message"), VALID)
def test_valid_messages_pass(kind: str, message: dict[str, Any]) -> None:
    before = copy.deepcopy(message)
    validate_message(message, kind=kind)
    assert message == before


# --------------------------------------------------------------------------- failing messages


def case(
    case_id: str,
    message: Any,
    field: str,
    code: int = 4004,
    kind: str = "sent",
) -> Any:
    return pytest.param(kind, message, field, code, id=case_id)


def wk(**changes: Any) -> dict[str, Any]:
    return with_msg("wechatwk", entry_with(SEED_WECHATWK_TEXT, **changes))


def app(entry: dict[str, Any]) -> dict[str, Any]:
    return with_msg("app", entry)


NOTIFY: dict[str, Any] = {"notification": {"alert": "hi"}}

INVALID = [
    # structure
    case("not-an-object", [], "message"),
    case("unknown-top-level-key", changed(BASE, sendno="x"), "sendno"),
    case("unknown-channel", changed(BASE, msg_fax=[{}]), "msg_fax"),
    case(
        "linkedcorp-has-no-msg",
        changed(BASE, msg_wechatwk_linkedcorp=[{}]),
        "msg_wechatwk_linkedcorp",
    ),
    case("unknown-audience", changed(BASE, aud_fax=["x"]), "aud_fax"),
    case("template-field-in-normal-send", changed(BASE, template_id=1), "template_id"),
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
    case("custom-not-objects", {"aud_sms": ["138"], "msg_sms": [SEED_SMS_CMPP]}, "aud_sms[0]"),
    case(
        "custom-no-data",
        {"aud_sms": [{"instance": "sms"}], "msg_sms": [SEED_SMS_CMPP]},
        "aud_sms[0].data",
    ),
    case(
        "custom-id-not-string",
        {"aud_sms": custom(138), "msg_sms": [SEED_SMS_CMPP]},
        "aud_sms[0].data[0]",
    ),
    case(
        "custom-instance-not-string",
        {"aud_sms": [{"instance": 1, "data": ["1"]}], "msg_sms": [SEED_SMS_CMPP]},
        "aud_sms[0].instance",
    ),
    case(
        "custom-1001-ids",
        {"aud_sms": [{"data": userids(600)}, {"data": userids(401)}], "msg_sms": [SEED_SMS_CMPP]},
        "aud_sms",
    ),
    case("custom-mixed-with-userid", changed(BASE, aud_sms=custom("138")), "aud_sms"),
    case(
        "custom-mixed-with-tag",
        {"aud_tag": ["t"], "aud_email": custom("a@b.c"), "msg_email": [SEED_EMAIL]},
        "aud_email",
    ),
    case(
        "custom-aud-without-msg",
        {"aud_sms": custom("138"), "aud_email": custom("a@b.c"), "msg_sms": [SEED_SMS_CMPP]},
        "msg_email",
    ),
    case(
        "custom-msg-without-aud",
        {"aud_sms": custom("138"), "msg_sms": [SEED_SMS_CMPP], "msg_email": [SEED_EMAIL]},
        "msg_email",
    ),
    # msg_xxx shape
    case("no-msg", changed(BASE, msg_sms=DROP), "msg_*"),
    case("msg-not-array", changed(BASE, msg_sms=SEED_SMS_JSMS), "msg_sms"),
    case("msg-empty-array", changed(BASE, msg_sms=[]), "msg_sms"),
    case("msg-entry-not-object", changed(BASE, msg_sms=["hi"]), "msg_sms[0]"),
    case("second-entry-checked", changed(BASE, msg_sms=[SEED_SMS_JSMS, {}]), "msg_sms[1].temp_id"),
    # msg_app
    case("app-platform-missing", app(NOTIFY), "msg_app[0].platform", 1015084),
    case(
        "app-platform-wrong", app({"platform": "windows", **NOTIFY}), "msg_app[0].platform", 1015085
    ),
    case(
        "app-platform-list-item",
        app({"platform": ["android", "winphone"], **NOTIFY}),
        "msg_app[0].platform[1]",
        1015085,
    ),
    case(
        "app-platform-empty-list", app({"platform": [], **NOTIFY}), "msg_app[0].platform", 1015085
    ),
    case("app-no-content", app({"platform": "all"}), "msg_app[0].notification"),
    case(
        "app-message-no-content",
        app({"platform": "all", "message": {"title": "t"}}),
        "msg_app[0].message.msg_content",
    ),
    case(
        "app-notification-not-object",
        app({"platform": "all", "notification": "hi"}),
        "msg_app[0].notification",
    ),
    case(
        "app-ttl-not-int",
        app({"platform": "all", **NOTIFY, "options": {"time_to_live": "60"}}),
        "msg_app[0].options.time_to_live",
    ),
    # msg_wechatoa
    case(
        "wechatoa-type-2",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_TEMPLATE, type=2)),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-type-string",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_TEMPLATE, type="0")),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-type-missing",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_TEMPLATE, type=DROP)),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-template_id-missing",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_SUBSCRIPTION, template_id=DROP)),
        "msg_wechatoa[0].template_id",
    ),
    case(
        "wechatoa-data-missing",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_TEMPLATE, data=DROP)),
        "msg_wechatoa[0].data",
    ),
    case(
        "wechatoa-data-no-value",
        with_msg("wechatoa", entry_with(SEED_WECHATOA_TEMPLATE, data={"first": {"color": "#000"}})),
        "msg_wechatoa[0].data.first.value",
    ),
    # msg_wechatmp
    case(
        "wechatmp-template_id-missing",
        with_msg("wechatmp", entry_with(SEED_WECHATMP, template_id=DROP)),
        "msg_wechatmp[0].template_id",
    ),
    case(
        "wechatmp-data-missing",
        with_msg("wechatmp", entry_with(SEED_WECHATMP, data=DROP)),
        "msg_wechatmp[0].data",
    ),
    case(
        "wechatmp-state-wrong",
        with_msg("wechatmp", entry_with(SEED_WECHATMP, miniprogram_state="beta")),
        "msg_wechatmp[0].miniprogram_state",
    ),
    case(
        "wechatmp-lang-wrong",
        with_msg("wechatmp", entry_with(SEED_WECHATMP, lang="fr_FR")),
        "msg_wechatmp[0].lang",
    ),
    # msg_sms
    case("sms-no-template-no-content", with_msg("sms", {"sign_id": "1"}), "msg_sms[0].temp_id"),
    case(
        "sms-temp_id-string",
        with_msg("sms", entry_with(SEED_SMS_JSMS, temp_id="1")),
        "msg_sms[0].temp_id",
        1015095,
    ),
    case(
        "sms-temp_id-zero",
        with_msg("sms", entry_with(SEED_SMS_JSMS, temp_id=0)),
        "msg_sms[0].temp_id",
        1015095,
    ),
    case(
        "sms-temp_para-missing",
        with_msg("sms", entry_with(SEED_SMS_JSMS, temp_para=DROP)),
        "msg_sms[0].temp_para",
    ),
    case(
        "sms-temp_para-not-object",
        with_msg("sms", entry_with(SEED_SMS_JSMS, temp_para=["1234"])),
        "msg_sms[0].temp_para",
    ),
    case("sms-cmpp-content-empty", with_msg("sms", {"content": ""}), "msg_sms[0].content"),
    # msg_email
    case(
        "email-subject-missing",
        with_msg("email", entry_with(SEED_EMAIL, subject=DROP)),
        "msg_email[0].subject",
    ),
    case(
        "email-text-missing",
        with_msg("email", entry_with(SEED_EMAIL, text=DROP)),
        "msg_email[0].text",
    ),
    case(
        "email-subject-not-string",
        with_msg("email", entry_with(SEED_EMAIL, subject=1)),
        "msg_email[0].subject",
    ),
    case(
        "email-files-not-array",
        with_msg("email", entry_with(SEED_EMAIL, files="url")),
        "msg_email[0].files",
    ),
    # msg_alipay_life
    case(
        "alipay-context-missing",
        with_msg("alipay_life", entry_with(SEED_ALIPAY_LIFE, context=DROP)),
        "msg_alipay_life[0].context",
    ),
    case(
        "alipay-template_id-129",
        with_msg("alipay_life", entry_with(SEED_ALIPAY_LIFE, template_id="t" * 129)),
        "msg_alipay_life[0].template_id",
    ),
    case(
        "alipay-head_color-missing",
        with_msg(
            "alipay_life", entry_with(SEED_ALIPAY_LIFE, context={"url": "u", "action_name": "a"})
        ),
        "msg_alipay_life[0].context.head_color",
    ),
    case(
        "alipay-action_name-9-chinese",
        with_msg(
            "alipay_life",
            entry_with(
                SEED_ALIPAY_LIFE, context={**SEED_ALIPAY_LIFE["context"], "action_name": "查" * 9}
            ),
        ),
        "msg_alipay_life[0].context.action_name",
    ),
    # msg_dingtalk_cc
    case("dingtalk-msg-missing", with_msg("dingtalk_cc", {}), "msg_dingtalk_cc[0].msg"),
    case(
        "dingtalk-msgtype-missing",
        with_msg("dingtalk_cc", {"msg": {"text": {"content": "x"}}}),
        "msg_dingtalk_cc[0].msg.msgtype",
    ),
    case(
        "dingtalk-text-content-missing",
        with_msg("dingtalk_cc", {"msg": {"msgtype": "text", "text": {}}}),
        "msg_dingtalk_cc[0].msg.text.content",
    ),
    case(
        "dingtalk-msgtype-unknown",
        with_msg("dingtalk_cc", {"msg": {"msgtype": "fax", "fax": {}}}),
        "msg_dingtalk_cc[0].msg.msgtype",
    ),
    # msg_wechatwk
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
    # rule_id
    case("rule_id-string", changed(BASE, rule_id="1001"), "rule_id"),
    case("rule_id-bool", changed(BASE, rule_id=True), "rule_id"),
    case("rule_id-negative", changed(BASE, rule_id=-1), "rule_id"),
    # option
    case("option-not-object", changed(BASE, option=[]), "option"),
    case("option-priority-0", changed(BASE, option={"priority": 0}), "option.priority"),
    case("option-priority-4", changed(BASE, option={"priority": 4}), "option.priority"),
    case("option-priority-string", changed(BASE, option={"priority": "1"}), "option.priority"),
    case(
        "option-black-and-white",
        changed(BASE, option={"black_id": 1, "white_id": 2}),
        "option.white_id",
        1015097,
    ),
    case("option-black_id-string", changed(BASE, option={"black_id": "1"}), "option.black_id"),
    case("option-sendno-not-string", changed(BASE, option={"sendno": 1}), "option.sendno"),
    # callback
    case("callback-not-object", changed(BASE, callback="https://x.example"), "callback"),
    case("callback-url-ftp", changed(BASE, callback={"url": "ftp://x.example/cb"}), "callback.url"),
    case("callback-url-relative", changed(BASE, callback={"url": "/cb"}), "callback.url"),
    case("callback-url-not-string", changed(BASE, callback={"url": 1}), "callback.url"),
    case(
        "callback-params-not-object", changed(BASE, callback={"params": ["a"]}), "callback.params"
    ),
    # template sends
    case(
        "template-with-msg",
        changed(TEMPLATE_BASE, msg_app=[SEED_APP]),
        "msg_app",
        1015094,
        "template_sent",
    ),
    case(
        "template-broadcast-with-msg",
        changed(TEMPLATE_BASE, aud_userid=DROP, msg_sms=[SEED_SMS_JSMS]),
        "msg_sms",
        1015094,
        "template_broadcast",
    ),
    case(
        "template-id-missing",
        changed(TEMPLATE_BASE, template_id=DROP),
        "template_id",
        kind="template_sent",
    ),
    case(
        "template-id-zero",
        changed(TEMPLATE_BASE, template_id=0),
        "template_id",
        kind="template_sent",
    ),
    case(
        "template-id-string",
        changed(TEMPLATE_BASE, template_id="1001"),
        "template_id",
        kind="template_sent",
    ),
    case(
        "template-para-not-object",
        changed(TEMPLATE_BASE, template_para=["x"]),
        "template_para",
        kind="template_sent",
    ),
    case(
        "template-unknown-key", changed(TEMPLATE_BASE, content="x"), "content", kind="template_sent"
    ),
    case(
        "template-app_para-not-object",
        changed(TEMPLATE_BASE, app_para="all"),
        "app_para",
        kind="template_sent",
    ),
    case(
        "template-app-platform-missing",
        changed(TEMPLATE_BASE, app_para={"time_to_live": 60}),
        "app_para.platform",
        1015084,
        "template_sent",
    ),
    case(
        "template-app-platform-hmos",
        changed(TEMPLATE_BASE, app_para={"platform": ["hmos"]}),
        "app_para.platform[0]",
        1015085,
        "template_sent",
    ),
    case(
        "template-app-platform-wrong",
        changed(TEMPLATE_BASE, app_para={"platform": "every"}),
        "app_para.platform",
        1015085,
        "template_sent",
    ),
    case(
        "template-app-ttl-over-10-days",
        changed(TEMPLATE_BASE, app_para={"platform": "all", "time_to_live": 864001}),
        "app_para.time_to_live",
        kind="template_sent",
    ),
    case(
        "template-broadcast-with-audience", TEMPLATE_BASE, "aud_userid", kind="template_broadcast"
    ),
    case(
        "template-sent-without-audience",
        changed(TEMPLATE_BASE, aud_userid=DROP),
        "aud_*",
        kind="template_sent",
    ),
]


@pytest.mark.parametrize(("kind", "message", "field", "code"), INVALID)
def test_invalid_messages_fail(kind: str, message: Any, field: str, code: int) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind=kind)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert str(caught.value) == f"{field}: {caught.value.reason}"
    assert caught.value.reason


def test_error_is_a_value_error_with_field_reason_and_code() -> None:
    with pytest.raises(ValueError, match=r"^option\.priority: must be one of 1, 2, 3, got 9$"):
        validate_message(changed(BASE, option={"priority": 9}), kind="sent")


def test_first_error_in_documented_order() -> None:
    # Audience comes before contents, contents before rule_id/option/callback.
    message = changed(
        BASE, aud_userid=["bad id"], msg_sms=[{}], option={"priority": 9}, rule_id="x"
    )
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind="sent")
    assert caught.value.field == "aud_userid[0]"
    message["aud_userid"] = ["ok"]
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind="sent")
    assert caught.value.field == "msg_sms[0].temp_id"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="'push'"):
        validate_message(BASE, kind="push")


def test_max_ids_none_skips_only_the_per_request_id_limits() -> None:
    big = changed(BASE, aud_userid=userids(2500))
    validate_message(big, kind="sent", max_ids=None)
    big_custom = {"aud_sms": custom(*userids(1500, "1")), "msg_sms": [SEED_SMS_CMPP]}
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


def test_null_optional_fields_count_as_absent() -> None:
    validate_message(
        changed(BASE, option={"black_id": 1, "white_id": None}, callback=None), kind="sent"
    )


# --------------------------------------------------------------------------- splitting


def test_split_2500_userids_into_1000_1000_500() -> None:
    message = changed(SEED_REQUEST, aud_userid=userids(2500))
    parts = split_message(message)
    assert [len(part["aud_userid"]) for part in parts] == [1000, 1000, 500]
    assert [uid for part in parts for uid in part["aud_userid"]] == message["aud_userid"]
    for part in parts:
        assert {k: v for k, v in part.items() if k != "aud_userid"} == {
            k: v for k, v in message.items() if k != "aud_userid"
        }
        validate_message(part, kind="sent")
    # Deep copies: changing one part changes neither the message nor another part.
    parts[0]["option"]["priority"] = 1
    parts[0]["msg_app"][0]["platform"] = "ios"
    assert message["option"]["priority"] == 2 and parts[1]["option"]["priority"] == 2
    assert message["msg_app"][0]["platform"] == "android"


@pytest.mark.parametrize(
    ("count", "sizes"), [(1, [1]), (1000, [1000]), (1001, [1000, 1]), (3000, [1000, 1000, 1000])]
)
def test_split_userid_boundaries(count: int, sizes: list[int]) -> None:
    parts = split_message(changed(BASE, aud_userid=userids(count)))
    assert [len(part["aud_userid"]) for part in parts] == sizes


def test_split_within_limits_returns_a_deep_copy() -> None:
    parts = split_message(SEED_REQUEST)
    assert parts == [SEED_REQUEST]
    assert parts[0] is not SEED_REQUEST
    parts[0]["callback"]["params"]["age"] = 1
    assert SEED_REQUEST["callback"]["params"]["age"] == 26


def test_split_broadcast_is_one_copy() -> None:
    message = changed(BASE, aud_userid=DROP)
    assert split_message(message) == [message]


def test_split_keeps_tags_and_segment_on_the_first_part_only() -> None:
    message = changed(BASE, aud_tag=["t1"], aud_userid=userids(1500))
    parts = split_message(message)
    assert [part.get("aud_tag") for part in parts] == [["t1"], None]
    assert [len(part["aud_userid"]) for part in parts] == [1000, 500]


def test_split_with_custom_limit() -> None:
    parts = split_message(changed(BASE, aud_userid=userids(5)), limit=2)
    assert [part["aud_userid"] for part in parts] == [["u0", "u1"], ["u2", "u3"], ["u4"]]


def test_split_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_message(BASE, limit=0)


def test_split_custom_channels_per_channel_with_matching_contents() -> None:
    sms_ids = userids(2500, "138")
    email_ids = [f"a{i}@x.cn" for i in range(1200)]
    message = {
        "aud_sms": [
            {"instance": "sms", "data": sms_ids[:1500]},
            {"instance": "sms2", "data": sms_ids[1500:]},
        ],
        "aud_email": custom(*email_ids),
        "aud_app": custom("regid1", "regid2"),
        "msg_sms": [SEED_SMS_JSMS],
        "msg_email": [SEED_EMAIL],
        "msg_app": [SEED_APP],
        "option": {"sendno": "s1"},
    }
    validate_message(message, kind="sent", max_ids=None)
    parts = split_message(message)

    def ids(part: dict[str, Any], key: str) -> list[str]:
        return [i for entry in part.get(key, []) for i in entry["data"]]

    assert [
        (len(ids(p, "aud_sms")), len(ids(p, "aud_email")), len(ids(p, "aud_app"))) for p in parts
    ] == [
        (1000, 1000, 2),
        (1000, 200, 0),
        (500, 0, 0),
    ]
    assert [sorted(k for k in p if k.startswith("msg_")) for p in parts] == [
        ["msg_app", "msg_email", "msg_sms"],
        ["msg_email", "msg_sms"],
        ["msg_sms"],
    ]
    assert [sorted(k for k in p if k.startswith("aud_")) for p in parts] == [
        ["aud_app", "aud_email", "aud_sms"],
        ["aud_email", "aud_sms"],
        ["aud_sms"],
    ]
    assert [i for p in parts for i in ids(p, "aud_sms")] == sms_ids
    assert [i for p in parts for i in ids(p, "aud_email")] == email_ids
    # The reserved instance field stays with the ids it came with.
    assert [(e["instance"], len(e["data"])) for e in parts[1]["aud_sms"]] == [
        ("sms", 500),
        ("sms2", 500),
    ]
    for part in parts:
        assert part["option"] == {"sendno": "s1"}
        validate_message(part, kind="sent")


@pytest.mark.parametrize(
    ("big", "small"),
    [("aud_wechatwk", "aud_wechatwk_linkedcorp"), ("aud_wechatwk_linkedcorp", "aud_wechatwk")],
)
def test_split_wechatwk_and_linkedcorp_share_msg_wechatwk(big: str, small: str) -> None:
    message = {
        big: custom(*userids(1500)),
        small: custom("Corp/u1"),
        "msg_wechatwk": [SEED_WECHATWK_TEXT],
    }
    parts = split_message(message)
    assert [sorted(k for k in p if k.startswith("aud_")) for p in parts] == [
        sorted([big, small]),
        [big],
    ]
    for part in parts:
        assert part["msg_wechatwk"] == [SEED_WECHATWK_TEXT]
        validate_message(part, kind="sent")


def test_split_template_send_to_custom_targets() -> None:
    message = changed(TEMPLATE_BASE, aud_userid=DROP, aud_sms=custom(*userids(1001, "1")))
    parts = split_message(message)
    assert [len(p["aud_sms"][0]["data"]) for p in parts] == [1000, 1]
    for part in parts:
        assert part["template_para"] == {"user": "x", "url": "y"}
        validate_message(part, kind="template_sent")


def test_split_refuses_mixed_targets() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        split_message(changed(BASE, aud_sms=custom("1")))
    assert caught.value.field == "aud_sms"


# --------------------------------------------------------------------------- personalised sends

# The RongCloud template-message idea: one content with {c}{d}, values per recipient.
APP_TEMPLATE: dict[str, Any] = {
    "msg_app": [
        {
            "platform": "all",
            "notification": {"alert": "hello {c}"},
            "message": {"msg_content": '{"content":"{c}{d}","extra":"bb"}'},
        }
    ],
    "option": {"sendno": "batch-7"},
}


def to_user(uid: str, **values: Any) -> dict[str, Any]:
    return {"to": {"aud_userid": uid}, "values": values}


def test_personalised_rongcloud_example_groups_identical_contents() -> None:
    recipients = [
        to_user("21", c="Tom", d=":2"),
        to_user("22", c="Jerry", d=":5"),
        to_user("23", c="Rose", d=":10"),
        to_user("24", c="Tom", d=":2"),
    ]
    messages = render_personalised(APP_TEMPLATE, recipients)
    assert [m["aud_userid"] for m in messages] == [["21", "24"], ["22"], ["23"]]
    assert [m["msg_app"][0]["notification"]["alert"] for m in messages] == [
        "hello Tom",
        "hello Jerry",
        "hello Rose",
    ]
    assert [m["msg_app"][0]["message"]["msg_content"] for m in messages] == [
        '{"content":"Tom:2","extra":"bb"}',
        '{"content":"Jerry:5","extra":"bb"}',
        '{"content":"Rose:10","extra":"bb"}',
    ]
    for m in messages:
        assert m["option"] == {"sendno": "batch-7"}
        validate_message(m, kind="sent")


def test_personalised_groups_by_rendered_content_not_by_values() -> None:
    # Different values, same rendered text: one message.
    template = {"msg_sms": [{"content": "{a}{b}"}]}
    messages = render_personalised(
        template,
        [
            {"to": {"aud_sms": "13800000001"}, "values": {"a": "x", "b": "y"}},
            {"to": {"aud_sms": "13800000002"}, "values": {"a": "xy", "b": ""}},
        ],
    )
    assert messages == [
        {"aud_sms": [{"data": ["13800000001", "13800000002"]}], "msg_sms": [{"content": "xy"}]}
    ]
    validate_message(messages[0], kind="sent")


def test_personalised_missing_placeholder_names_recipient_and_placeholder() -> None:
    recipients = [
        to_user("21", c="Tom", d=":2"),
        to_user("22", c="Jerry", d=":5"),
        to_user("23", c="Rose"),
    ]
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(APP_TEMPLATE, recipients)
    assert (caught.value.field, caught.value.code) == ("recipients[2].values.d", 4004)


def test_personalised_recipient_without_values() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(APP_TEMPLATE, [{"to": {"aud_userid": "21"}}])
    assert caught.value.field == "recipients[0].values.c"


def test_personalised_values_are_not_expanded_again() -> None:
    messages = render_personalised(APP_TEMPLATE, [to_user("21", c="{d}", d="{c}")])
    entry = messages[0]["msg_app"][0]
    assert entry["notification"]["alert"] == "hello {d}"
    assert entry["message"]["msg_content"] == '{"content":"{d}{c}","extra":"bb"}'


def test_personalised_keeps_braces_that_are_not_placeholders() -> None:
    text = '{"a": {1}, {}, { name }, {9x}, {-b} {'
    messages = render_personalised({"msg_sms": [{"content": text}]}, [{"to": {"aud_sms": "1"}}])
    assert messages[0]["msg_sms"][0]["content"] == text
    # {{b}} holds the placeholder {b}; the outer braces are kept.
    messages = render_personalised(
        {"msg_sms": [{"content": "{{b}}"}]}, [{"to": {"aud_sms": "1"}, "values": {"b": "v"}}]
    )
    assert messages[0]["msg_sms"][0]["content"] == "{v}"


def test_personalised_numbers_render_and_other_values_fail() -> None:
    template = {"msg_sms": [{"temp_id": 1, "temp_para": {"code": "{code}", "n": "{n}"}}]}
    messages = render_personalised(
        template, [{"to": {"aud_sms": "1"}, "values": {"code": 1234, "n": 1.5}}]
    )
    assert messages[0]["msg_sms"][0] == {"temp_id": 1, "temp_para": {"code": "1234", "n": "1.5"}}
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(template, [{"to": {"aud_sms": "1"}, "values": {"code": True, "n": 1}}])
    assert caught.value.field == "recipients[0].values.code"


def test_personalised_order_is_first_appearance_and_ids_are_not_doubled() -> None:
    template = {"msg_sms": [{"content": "hi {n}"}]}
    recipients = [
        {"to": {"aud_sms": phone}, "values": {"n": name}}
        for phone, name in [("3", "B"), ("1", "A"), ("3", "B"), ("2", "B"), ("1", "C")]
    ]
    messages = render_personalised(template, recipients)
    assert [(m["msg_sms"][0]["content"], m["aud_sms"][0]["data"]) for m in messages] == [
        ("hi B", ["3", "2"]),
        ("hi A", ["1"]),
        ("hi C", ["1"]),
    ]


def test_personalised_does_not_change_the_template() -> None:
    before = copy.deepcopy(APP_TEMPLATE)
    messages = render_personalised(APP_TEMPLATE, [to_user("21", c="Tom", d="!")])
    messages[0]["option"]["sendno"] = "changed"
    assert before == APP_TEMPLATE


def test_personalised_then_split_and_validate() -> None:
    template = {"msg_sms": [{"temp_id": 1, "temp_para": {"greeting": "{g}"}}]}
    recipients = [to_user(f"u{i}", g="hi" if i % 2 else "hello") for i in range(2500)]
    messages = render_personalised(template, recipients)
    assert [len(m["aud_userid"]) for m in messages] == [1250, 1250]
    parts = [part for m in messages for part in split_message(m)]
    assert [len(p["aud_userid"]) for p in parts] == [1000, 250, 1000, 250]
    for part in parts:
        validate_message(part, kind="sent")


@pytest.mark.parametrize(
    ("template", "recipients", "field"),
    [
        pytest.param(
            changed(APP_TEMPLATE, aud_userid=["x"]),
            [to_user("1", c="", d="")],
            "template.aud_userid",
            id="template-with-audience",
        ),
        pytest.param(APP_TEMPLATE, [], "recipients", id="no-recipients"),
        pytest.param(APP_TEMPLATE, ["21"], "recipients[0]", id="recipient-not-object"),
        pytest.param(APP_TEMPLATE, [{"values": {}}], "recipients[0].to", id="recipient-without-to"),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_tag": "t"}}],
            "recipients[0].to",
            id="tag-is-not-a-recipient",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": "1", "aud_sms": "2"}}],
            "recipients[0].to",
            id="two-audiences",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": 21}}],
            "recipients[0].to.aud_userid",
            id="id-not-string",
        ),
        pytest.param(
            APP_TEMPLATE,
            [to_user("1", c="", d=""), {"to": {"aud_sms": "2"}, "values": {"c": "", "d": ""}}],
            "recipients[1].to",
            id="mixed-audience-kinds",
        ),
        pytest.param(
            APP_TEMPLATE,
            [{"to": {"aud_userid": "1"}, "values": ["c"]}],
            "recipients[0].values",
            id="values-not-object",
        ),
    ],
)
def test_personalised_input_errors(template: Any, recipients: Any, field: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        render_personalised(template, recipients)
    assert (caught.value.field, caught.value.code) == (field, 4004)
