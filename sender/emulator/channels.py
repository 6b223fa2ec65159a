"""The delivery channels the emulator plays, as callback records name them.

A record's ``sender`` says which channel made it (0: UMS itself); WeCom records add
``wechatwk_sender`` (0: the internal API, 1: the linked-corp API); APP records add
``app_platform`` (the device OS) and ``app_sender`` (the vendor channel), as the Go SDK
cavlabs/jiguang-sdk-go numbers them (消息回调设置, Message callback settings). The
numbers themselves are ``sender.ums.protocol``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..ums.protocol import SENDER_BY_CHANNEL, VENDOR_BY_INDEX
from ..ums.rules import CUSTOM_AUDIENCES, MSG_CHANNELS


@dataclass(frozen=True)
class Channel:
    """A UMS delivery channel as records name it: ``sender`` (and ``wechatwk_sender``)."""

    name: str
    sender: int
    wechatwk_sender: int | None = None


_WECOM: Final = SENDER_BY_CHANNEL["wechatwk"]
CHANNELS: Final[Mapping[str, Channel]] = {
    **{
        name: Channel(name, SENDER_BY_CHANNEL[name])
        for name in ("app", "wechatoa", "wechatmp", "email", "sms", "dingtalk_cc", "alipay_life")
    },
    "wechatwk": Channel("wechatwk", _WECOM, 0),
    "wechatwk_linkedcorp": Channel("wechatwk_linkedcorp", _WECOM, 1),
}
# The channel each custom audience (aud_sms: phone numbers, ...) and each msg_xxx reaches.
CHANNEL_BY_AUDIENCE: Final[Mapping[str, Channel]] = {
    aud: CHANNELS[aud.removeprefix("aud_")] for aud in CUSTOM_AUDIENCES
}
CHANNEL_BY_MSG: Final[Mapping[str, Channel]] = {
    msg: CHANNELS[msg.removeprefix("msg_")] for msg in MSG_CHANNELS
}

# The vendor channels (app_sender) an APP record can name for each platform.
_INDEX_BY_VENDOR: Final = {name: index for index, name in VENDOR_BY_INDEX.items()}
VENDORS: Final[Mapping[str, tuple[int, ...]]] = {
    platform: tuple(_INDEX_BY_VENDOR[name] for name in names)
    for platform, names in {
        "android": ("jiguang", "huawei", "oppo", "vivo", "xiaomi"),
        "ios": ("apns",),
        "web": ("jiguang",),
        "quickapp": ("jiguang",),
        "hmos": ("huawei",),
    }.items()
}
