"""UMS rules of each msg_xxx channel's content but WeCom (sender/ums/rules/channels.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ums_examples import (
    BASE,
    DOC_ALIPAY_LIFE,
    DOC_APP,
    DOC_DINGTALK,
    DOC_EMAIL,
    DOC_SMS_CMPP,
    DOC_SMS_JSMS,
    DOC_WECHATMP,
    DOC_WECHATOA_SUBSCRIPTION,
    DOC_WECHATOA_TEMPLATE,
    DROP,
    case,
    changed,
    with_msg,
)

VALID = [
    pytest.param("sent", with_msg("app", DOC_APP), id="doc-msg_app"),
    pytest.param("sent", with_msg("wechatoa", DOC_WECHATOA_TEMPLATE), id="doc-wechatoa-template"),
    pytest.param(
        "sent", with_msg("wechatoa", DOC_WECHATOA_SUBSCRIPTION), id="doc-wechatoa-subscription"
    ),
    pytest.param(
        "sent",
        with_msg(
            "wechatoa",
            changed(DOC_WECHATOA_TEMPLATE, appid="xiaochengxuappid12345", pagepath="index"),
        ),
        id="wechatoa-flat-appid-pagepath",
    ),
    pytest.param("sent", with_msg("wechatmp", DOC_WECHATMP), id="doc-msg_wechatmp"),
    pytest.param("sent", with_msg("sms", DOC_SMS_JSMS), id="doc-msg_sms-jsms"),
    pytest.param("sent", with_msg("sms", DOC_SMS_CMPP), id="doc-msg_sms-cmpp"),
    pytest.param("sent", with_msg("sms", changed(DOC_SMS_JSMS, sign_id=7)), id="sms-int-sign"),
    # The reported body: a JSMS template without variables, as the Go SDK sends it
    # (temp_para omitted when empty).
    pytest.param("sent", with_msg("sms", {"temp_id": 1}), id="sms-without-temp_para"),
    pytest.param(
        "sent", with_msg("sms", changed(DOC_SMS_JSMS, temp_para=None)), id="sms-temp_para-null"
    ),
    pytest.param("sent", with_msg("email", DOC_EMAIL), id="doc-msg_email"),
    pytest.param("sent", with_msg("alipay_life", DOC_ALIPAY_LIFE), id="doc-msg_alipay_life"),
    pytest.param("sent", with_msg("dingtalk_cc", DOC_DINGTALK), id="doc-msg_dingtalk_cc"),
    pytest.param(
        "sent",
        with_msg("app", {"platform": ["android", "ios"], "message": {"msg_content": "hi"}}),
        id="app-platform-list-message-only",
    ),
]


def app(entry: dict[str, Any]) -> dict[str, Any]:
    return with_msg("app", entry)


NOTIFY: dict[str, Any] = {"notification": {"alert": "hi"}}

INVALID = [
    # msg_xxx shape
    case("no-msg", changed(BASE, msg_sms=DROP), "msg_*"),
    case("msg-not-array", changed(BASE, msg_sms=DOC_SMS_JSMS), "msg_sms"),
    case("msg-empty-array", changed(BASE, msg_sms=[]), "msg_sms"),
    case("msg-entry-not-object", changed(BASE, msg_sms=["hi"]), "msg_sms[0]"),
    case("second-entry-checked", changed(BASE, msg_sms=[DOC_SMS_JSMS, {}]), "msg_sms[1].temp_id"),
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
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, type=2)),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-type-string",
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, type="0")),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-type-missing",
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, type=DROP)),
        "msg_wechatoa[0].type",
    ),
    case(
        "wechatoa-template_id-missing",
        with_msg("wechatoa", changed(DOC_WECHATOA_SUBSCRIPTION, template_id=DROP)),
        "msg_wechatoa[0].template_id",
    ),
    case(
        "wechatoa-data-missing",
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, data=DROP)),
        "msg_wechatoa[0].data",
    ),
    case(
        "wechatoa-data-no-value",
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, data={"first": {"color": "#000"}})),
        "msg_wechatoa[0].data.first.value",
    ),
    case(
        "wechatoa-flat-appid-not-string",
        with_msg("wechatoa", changed(DOC_WECHATOA_TEMPLATE, appid=12345)),
        "msg_wechatoa[0].appid",
    ),
    case(
        "wechatoa-flat-pagepath-not-string",
        with_msg("wechatoa", changed(DOC_WECHATOA_SUBSCRIPTION, pagepath=["index"])),
        "msg_wechatoa[0].pagepath",
    ),
    # msg_wechatmp
    case(
        "wechatmp-template_id-missing",
        with_msg("wechatmp", changed(DOC_WECHATMP, template_id=DROP)),
        "msg_wechatmp[0].template_id",
    ),
    case(
        "wechatmp-data-missing",
        with_msg("wechatmp", changed(DOC_WECHATMP, data=DROP)),
        "msg_wechatmp[0].data",
    ),
    case(
        "wechatmp-state-wrong",
        with_msg("wechatmp", changed(DOC_WECHATMP, miniprogram_state="beta")),
        "msg_wechatmp[0].miniprogram_state",
    ),
    case(
        "wechatmp-lang-wrong",
        with_msg("wechatmp", changed(DOC_WECHATMP, lang="fr_FR")),
        "msg_wechatmp[0].lang",
    ),
    # msg_sms
    case("sms-no-template-no-content", with_msg("sms", {"sign_id": "1"}), "msg_sms[0].temp_id"),
    case(
        "sms-temp_id-string",
        with_msg("sms", changed(DOC_SMS_JSMS, temp_id="1")),
        "msg_sms[0].temp_id",
        1015095,
    ),
    case(
        "sms-temp_id-zero",
        with_msg("sms", changed(DOC_SMS_JSMS, temp_id=0)),
        "msg_sms[0].temp_id",
        1015095,
    ),
    case(
        "sms-temp_para-not-object",
        with_msg("sms", changed(DOC_SMS_JSMS, temp_para=["1234"])),
        "msg_sms[0].temp_para",
    ),
    case("sms-cmpp-content-empty", with_msg("sms", {"content": ""}), "msg_sms[0].content"),
    # msg_email
    case(
        "email-subject-missing",
        with_msg("email", changed(DOC_EMAIL, subject=DROP)),
        "msg_email[0].subject",
    ),
    case(
        "email-text-missing",
        with_msg("email", changed(DOC_EMAIL, text=DROP)),
        "msg_email[0].text",
    ),
    case(
        "email-subject-not-string",
        with_msg("email", changed(DOC_EMAIL, subject=1)),
        "msg_email[0].subject",
    ),
    case(
        "email-files-not-array",
        with_msg("email", changed(DOC_EMAIL, files="url")),
        "msg_email[0].files",
    ),
    # msg_alipay_life
    case(
        "alipay-context-missing",
        with_msg("alipay_life", changed(DOC_ALIPAY_LIFE, context=DROP)),
        "msg_alipay_life[0].context",
    ),
    case(
        "alipay-template_id-129",
        with_msg("alipay_life", changed(DOC_ALIPAY_LIFE, template_id="t" * 129)),
        "msg_alipay_life[0].template_id",
    ),
    case(
        "alipay-head_color-missing",
        with_msg("alipay_life", changed(DOC_ALIPAY_LIFE, context={"url": "u", "action_name": "a"})),
        "msg_alipay_life[0].context.head_color",
    ),
    case(
        "alipay-action_name-9-chinese",
        with_msg(
            "alipay_life",
            changed(
                DOC_ALIPAY_LIFE, context={**DOC_ALIPAY_LIFE["context"], "action_name": "查" * 9}
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
    # DingTalk's own work-notice types that neither the page nor the Go SDK lists.
    *(
        case(
            f"dingtalk-{msgtype}-undocumented",
            with_msg("dingtalk_cc", {"msg": {"msgtype": msgtype, msgtype: {"title": "t"}}}),
            "msg_dingtalk_cc[0].msg.msgtype",
        )
        for msgtype in ("markdown", "action_card", "link", "oa", "image", "voice", "file")
    ),
    case(
        "dingtalk-text-not-object",
        with_msg("dingtalk_cc", {"msg": {"msgtype": "text", "text": "test"}}),
        "msg_dingtalk_cc[0].msg.text",
    ),
]
