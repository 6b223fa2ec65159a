"""UMS rules of template sends: template_id, template_para, app_para, no msg_xxx
(sender/ums/rules/message.py)."""

from __future__ import annotations

import pytest

from tests.ums_examples import (
    DOC_APP,
    DOC_SMS_JSMS,
    DOC_TEMPLATE_REQUEST,
    DROP,
    TEMPLATE_BASE,
    case,
    changed,
    custom,
)

VALID = [
    pytest.param("template_sent", TEMPLATE_BASE, id="template-sent"),
    pytest.param("template_sent", DOC_TEMPLATE_REQUEST, id="doc-template-request"),
    # The Go SDK leaves template_para out when no variables are given; the page marks it
    # required: both pass.
    pytest.param(
        "template_sent", changed(TEMPLATE_BASE, template_para=DROP), id="template-without-para"
    ),
    pytest.param(
        "template_broadcast",
        changed(TEMPLATE_BASE, aud_userid=DROP, template_para={}),
        id="template-broadcast-empty-para",
    ),
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
]

INVALID = [
    case(
        "template-with-msg",
        changed(TEMPLATE_BASE, msg_app=[DOC_APP]),
        "msg_app",
        1015094,
        "template_sent",
    ),
    case(
        "template-broadcast-with-msg",
        changed(TEMPLATE_BASE, aud_userid=DROP, msg_sms=[DOC_SMS_JSMS]),
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
        "template-para-string",
        changed(TEMPLATE_BASE, template_para='{"user": "x"}'),
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
