"""Jiguang UMS protocol facts that every other module imports instead of re-declaring.

Sources, by the title of the provider's public page:

- 消息回调设置 (Message callback settings): the nine status ``type`` values, the
  record fields, and how UMS delivers them (a bare JSON array per POST, at most 100
  records or what gathered in 10 s, only HTTP 200 counts, a failed batch retried every
  50 s at most 3 times, ``Authorization: Basic base64(channelkey:mastersecret)``, URL
  verification by ``GET ?echostr=``). The page is cut short after ``sender_id``; the
  later fields (``sender``, ``wechatwk_sender``, ``app_platform``, ``app_sender``,
  ``sent_time``, ``error``, ``params``) are as the public Go SDK (cavlabs/jiguang-sdk-go,
  ``api/jums/callback``) decodes them, which marks every field but ``type`` optional.
- 业务返回码 (Business return codes): every answer is ``{"code", "message"}``,
  ``code`` 0 meaning success; the codes below.
- 普通消息发送 v1 (Ordinary message sending v1), 模板消息 (Template messages) and
  撤回消息 (Withdraw a message): the endpoints and the msgid format
  ``v:1t:<ts>p:<n>n:<n>`` (msgids contain ``:``).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Final, NamedTuple

DEFAULT_API_BASE: Final = "https://api.ums.jiguang.cn"

# --- Business return codes (业务返回码) --------------------------------------------
SUCCESS: Final = 0
INVALID_PARAMETER: Final = 4004
AUTH_FAILED: Final = 4005
SERVER_ERROR: Final = 5000
TOO_MANY_USERIDS: Final = 1015004
CHANNEL_CLOSED: Final = 1015005
RATE_LIMITED: Final = 1015030
ALREADY_WITHDRAWN: Final = 1015055
APP_PLATFORM_MISSING: Final = 1015084
APP_PLATFORM_WRONG: Final = 1015085
MSG_IN_TEMPLATE_SEND: Final = 1015094
SMS_TEMPLATE_ID_ILLEGAL: Final = 1015095
BLACK_AND_WHITE_ID: Final = 1015097

# At most this many userids (or ids on one custom channel) in one request.
MAX_IDS: Final = 1000

# Callback param umstrack adds to every send: the send a message belongs to, so that
# its callbacks link back to it whoever sent them.
TRACKING_PARAM: Final = "umstrack_send"


class SendKind(StrEnum):
    """The four UMS send endpoints: /v1/sent, /v1/broadcast and their template forms."""

    SENT = "sent"
    BROADCAST = "broadcast"
    TEMPLATE_SENT = "template_sent"
    TEMPLATE_BROADCAST = "template_broadcast"

    @property
    def is_template(self) -> bool:
        """Whether the kind sends a console template (template_id)."""
        return self in (SendKind.TEMPLATE_SENT, SendKind.TEMPLATE_BROADCAST)

    @property
    def is_broadcast(self) -> bool:
        """Whether the kind goes to every user (no aud_xxx)."""
        return self in (SendKind.BROADCAST, SendKind.TEMPLATE_BROADCAST)

    @property
    def path(self) -> str:
        """The REST path of the kind."""
        return SEND_PATHS[self]


SEND_PATHS: Final[dict[SendKind, str]] = {
    SendKind.SENT: "/v1/sent",
    SendKind.BROADCAST: "/v1/broadcast",
    SendKind.TEMPLATE_SENT: "/v1/template/sent",
    SendKind.TEMPLATE_BROADCAST: "/v1/template/broadcast",
}
RETRACT_PATH: Final = "/v1/retract/"  # + msgid

# --- Status types (消息回调设置) ---------------------------------------------------


class Stage(IntEnum):
    """Lifecycle stages in the order a target moves through them."""

    VALIDATION = 0
    SUBMISSION = 1
    DELIVERY = 2
    ENGAGEMENT = 3
    WITHDRAWAL = 4


class StatusType(IntEnum):
    """The nine callback ``type`` values."""

    TARGET_VALID = 0
    TARGET_INVALID = 1
    SUBMITTED = 2
    SUBMIT_FAILED = 3
    DELIVERED = 4
    DELIVERY_FAILED = 5
    CLICKED = 6
    WITHDRAWN = 7
    WITHDRAW_FAILED = 8


class StatusInfo(NamedTuple):
    """What a callback type means: its status name, stage, and whether it is a success."""

    name: str
    stage: Stage
    ok: bool


STATUS_INFO: Final[dict[int, StatusInfo]] = {
    StatusType.TARGET_VALID: StatusInfo("target_valid", Stage.VALIDATION, True),
    StatusType.TARGET_INVALID: StatusInfo("target_invalid", Stage.VALIDATION, False),
    StatusType.SUBMITTED: StatusInfo("submitted", Stage.SUBMISSION, True),
    StatusType.SUBMIT_FAILED: StatusInfo("submit_failed", Stage.SUBMISSION, False),
    StatusType.DELIVERED: StatusInfo("delivered", Stage.DELIVERY, True),
    StatusType.DELIVERY_FAILED: StatusInfo("delivery_failed", Stage.DELIVERY, False),
    StatusType.CLICKED: StatusInfo("clicked", Stage.ENGAGEMENT, True),
    StatusType.WITHDRAWN: StatusInfo("withdrawn", Stage.WITHDRAWAL, True),
    StatusType.WITHDRAW_FAILED: StatusInfo("withdraw_failed", Stage.WITHDRAWAL, False),
}
STATUS_BY_TYPE: Final[dict[int, str]] = {int(t): info.name for t, info in STATUS_INFO.items()}
TYPE_BY_STATUS: Final[dict[str, int]] = {name: t for t, name in STATUS_BY_TYPE.items()}
# The nine status names in type order.
STATUSES: Final[tuple[str, ...]] = tuple(STATUS_BY_TYPE[t] for t in sorted(STATUS_BY_TYPE))
# Types whose records carry an ``error`` object (1, 3, 5 and 8).
FAILURE_TYPES: Final[frozenset[int]] = frozenset(
    int(t) for t, info in STATUS_INFO.items() if not info.ok
)

# --- Channels: the record's ``sender`` ------------------------------------------

SYSTEM_SENDER: Final = 0  # UMS itself: validation records, before any channel
# Not a UMS value: the events umstrack records itself for RongCloud sends.
RONGCLOUD_SENDER: Final = 100

# ``sender`` as the Go SDK numbers it. Its comment puts 5G at 8 and WeCom at 9, its
# code at 9 and 10; 9 is settled per record by channel_name().
CHANNEL_BY_SENDER: Final[dict[int, str]] = {
    SYSTEM_SENDER: "ums",
    1: "app",
    2: "wechatoa",
    3: "wechatmp",
    4: "email",
    5: "sms",
    6: "dingtalk_cc",
    7: "alipay_life",
    8: "5g",
    10: "wechatwk",
    RONGCLOUD_SENDER: "rongcloud",
}
SENDER_BY_CHANNEL: Final[dict[str, int]] = {
    name: sender for sender, name in CHANNEL_BY_SENDER.items()
}
# WeCom when the record has ``wechatwk_sender``, else 5G messaging.
AMBIGUOUS_SENDER: Final = 9


def is_channel_name(name: str) -> bool:
    """Whether ``name`` is one :func:`channel_name` can give."""
    if name in SENDER_BY_CHANNEL:
        return True
    number = name.removeprefix("unknown:")
    return number != name and number.lstrip("-").isascii() and number.lstrip("-").isdigit()


def channel_name(sender: int | None, *, wechatwk_sender: int | None = None) -> str | None:
    """Channel name for a record's ``sender``; unknown values read ``unknown:<n>``.

    9 is WeCom in the SDK's comment and 5G messaging in its code; a record with
    ``wechatwk_sender`` (only sent for WeCom) settles it.
    """
    if sender is None:
        return None
    if sender == AMBIGUOUS_SENDER:
        return "wechatwk" if wechatwk_sender is not None else "5g"
    return CHANNEL_BY_SENDER.get(sender, f"unknown:{sender}")


# ``app_platform`` as the SDK indexes it; a record may also give the name itself.
PLATFORM_BY_INDEX: Final[dict[int, str]] = {
    0: "android",
    1: "ios",
    2: "web",
    3: "quickapp",
    4: "hmos",
}
INDEX_BY_PLATFORM: Final[dict[str, int]] = {v: k for k, v in PLATFORM_BY_INDEX.items()}

# ``app_sender``: the vendor channel an app notification went through (7 is unused).
VENDOR_BY_INDEX: Final[dict[int, str]] = {
    0: "jiguang",
    1: "huawei",
    2: "oppo",
    3: "vivo",
    4: "xiaomi",
    5: "meizu",
    6: "fcm",
    8: "apns",
}


def platform_name(value: str | int | None) -> str | None:
    """The name of a stored ``app_platform`` (kept as text): an index or a name."""
    if value is None:
        return None
    text = str(value)
    if text.isascii() and text.isdigit():
        return PLATFORM_BY_INDEX.get(int(text), text)
    return text


def vendor_name(value: int | None) -> str | None:
    """The name of an ``app_sender`` value; unknown values read ``unknown:<n>``."""
    return None if value is None else VENDOR_BY_INDEX.get(value, f"unknown:{value}")
