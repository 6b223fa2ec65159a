"""Example UMS messages, builders and assertions shared by the UMS rule tests."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sender.errors import InvalidMessageError
from sender.ums.rules import validate_message

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
    """``count`` distinct ids: prefix0, prefix1, ..."""
    return [f"{prefix}{i}" for i in range(count)]


def custom(*ids: Any, instance: str | None = None) -> list[dict[str, Any]]:
    """A custom channel target holding ``ids``: [{"instance"?, "data": [ids]}]."""
    entry: dict[str, Any] = {"data": list(ids)}
    if instance is not None:
        entry["instance"] = instance
    return [entry]


# --- the examples of UMS's page 普通消息发送 v1 (Ordinary message sending v1) ----------
# As the page gives them, with its syntax slips fixed (trailing and missing commas in
# msg_app).

DOC_REQUEST: dict[str, Any] = {
    "aud_userid": ["user1", "user2"],
    "msg_app": [{"platform": "android", "notification": {"android": {"alert": "Hi,JPush !"}}}],
    "rule_id": 1001,
    "option": {"sendno": "test", "owner": "admin", "black_id": 1234, "priority": 2},
    "callback": {"url": "https://www.jiguang.cn/ums-portal", "params": {"name": "joe", "age": 26}},
}

DOC_APP: dict[str, Any] = {
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

DOC_WECHATOA_TEMPLATE: dict[str, Any] = {
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

DOC_WECHATOA_SUBSCRIPTION: dict[str, Any] = {
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

DOC_WECHATMP: dict[str, Any] = {
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

DOC_SMS_JSMS: dict[str, Any] = {"sign_id": "1", "temp_id": 1, "temp_para": {"code": "1234"}}
DOC_SMS_CMPP: dict[str, Any] = {
    "content": "您登录系统的动态码为:111 ,动态码有效时间为1分钟,请注意保密。"
}
DOC_EMAIL: dict[str, Any] = {
    "subject": "hello, ums email!",
    "text": "ums email test. reply",
    "files": ["填写url1", "填写url2"],
}
DOC_ALIPAY_LIFE: dict[str, Any] = {
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
DOC_DINGTALK: dict[str, Any] = {"msg": {"msgtype": "text", "text": {"content": "test"}}}

_WK_COMMON: dict[str, Any] = {
    "safe": 0,
    "enable_duplicate_check": 1,
    "duplicate_check_interval": 1800,
}
DOC_WECHATWK_TEXT: dict[str, Any] = {
    "msgtype": "text",
    "text": {"content": "你的快递已到,请携带工卡前往邮件中心领取,聪明避开排队。"},
    **_WK_COMMON,
}
DOC_WECHATWK_IMAGE: dict[str, Any] = {
    "msgtype": "image",
    "image": {"media_id": "MEDIA_ID"},
    **_WK_COMMON,
}
DOC_WECHATWK_FILE: dict[str, Any] = {
    "msgtype": "file",
    "file": {"media_id": "1Yv-zXfHjSjU-7LH-GwtYqDGS-zz6w22KmWAT5COgP7o"},
    **_WK_COMMON,
}
DOC_WECHATWK_NEWS: dict[str, Any] = {
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
DOC_WECHATWK_MPNEWS: dict[str, Any] = {
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
DOC_WECHATWK_MINIPROGRAM: dict[str, Any] = {
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

DOC_CUSTOM_AUDIENCE: dict[str, Any] = {
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
DOC_ALL_CONTENTS: dict[str, Any] = {
    "msg_app": [DOC_APP],
    "msg_wechatoa": [DOC_WECHATOA_TEMPLATE],
    "msg_wechatmp": [DOC_WECHATMP],
    "msg_sms": [DOC_SMS_JSMS],
    "msg_email": [DOC_EMAIL],
    "msg_alipay_life": [DOC_ALIPAY_LIFE],
    "msg_dingtalk_cc": [DOC_DINGTALK],
    "msg_wechatwk": [DOC_WECHATWK_TEXT],
}

# --- the example of UMS's page 模板消息发送 v1 (Template message sending v1) --------
# Its request example up to rule_id (the option that follows is the ordinary page's).
DOC_TEMPLATE_REQUEST: dict[str, Any] = {
    "aud_userid": ["user1", "user2"],
    "template_id": 10001,
    "template_para": {"user": "xxx", "url": "xxx"},
    "app_para": {"platform": "ios", "time_to_live": 9999, "apns_production": True},
    "rule_id": 1001,
}

# Small valid targeted sends, ordinary and template, that a failing case changes one
# thing in.
BASE: dict[str, Any] = {"aud_userid": ["user1"], "msg_sms": [DOC_SMS_JSMS]}
TEMPLATE_BASE: dict[str, Any] = {
    "aud_userid": ["user1"],
    "template_id": 1001,
    "template_para": {"user": "x", "url": "y"},
}


def with_msg(channel: str, entry: Any) -> dict[str, Any]:
    """BASE with its content replaced by msg_<channel>: [entry]."""
    return changed(BASE, **{"msg_sms": DROP, f"msg_{channel}": [entry]})


def case(case_id: str, message: Any, field: str, code: int = 4004, kind: str = "sent") -> Any:
    """A failing case: validate_message(message, kind=kind) must refuse field with code."""
    return pytest.param(kind, message, field, code, id=case_id)


def assert_accepted(kind: str, message: dict[str, Any]) -> None:
    """validate_message takes the message and leaves it unchanged."""
    before = copy.deepcopy(message)
    validate_message(message, kind=kind)
    assert message == before


def assert_refused(kind: str, message: Any, field: str, code: int) -> None:
    """validate_message refuses the message on field, with code and a reason."""
    with pytest.raises(InvalidMessageError) as caught:
        validate_message(message, kind=kind)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert str(caught.value) == f"{field}: {caught.value.reason}"
    assert caught.value.reason
