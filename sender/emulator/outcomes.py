"""Which records each target gets for a send and for a withdraw.

From UMS's pages (消息回调设置, Message callback settings; 撤回消息, Withdraw a message):

- UMS first checks every recipient itself: target valid (0) or invalid (1), with
  ``sender`` 0. A valid recipient then becomes one target per channel the message
  uses, which is submitted (2) or not (3), then delivered (4) or not (5), and may be
  clicked (6).
- Records carry ``type``, ``channelkey``, ``msgid``, ``userid`` (empty for custom
  channel ids), ``sender_id`` (the id on the channel), ``sender``, the channel's own
  fields, ``sent_time`` in seconds, ``error`` ``{code, message}`` on types 1, 3, 5 and
  8 only, and the message's ``callback.params`` unchanged.
- A withdraw reports withdrawn (7) or withdraw failed (8) for what the channels took;
  SMS can only stop UMS's own undelivered copies.

Where the pages are silent, the emulator decides:

- ``error.code`` values are made up (1001, 3001, 5001, 8001-8003): no public table
  exists.
- Targets: each aud_userid, ``users_per_tag`` made-up users per tag and per segment
  (``broadcast_users`` for a broadcast), on one channel per msg_xxx; custom channel ids
  are their own targets (userid ""). A template send reaches ``template_channels``
  (default SMS and e-mail), plus APP when ``app_para`` is given.
- Withdraw: every target a channel took gets withdrawn or withdraw failed; a clicked
  target, or a delivered SMS or e-mail, cannot be taken back.
"""

from __future__ import annotations

import copy
import hashlib
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

from ..ums.protocol import FAILURE_TYPES, INDEX_BY_PLATFORM, SYSTEM_SENDER, SendKind, StatusType
from ..ums.rules import CUSTOM_AUDIENCES, MSG_CHANNELS
from .channels import CHANNEL_BY_AUDIENCE, CHANNEL_BY_MSG, CHANNELS, VENDORS, Channel
from .config import EmulatorConfig

# Made-up error objects per failure type: UMS publishes no table of them.
_ERRORS: Final[Mapping[int, tuple[int, str]]] = {
    StatusType.TARGET_INVALID: (
        1001,
        "target invalid: unknown user or id, or nothing bound for the channel",
    ),
    StatusType.SUBMIT_FAILED: (3001, "submit failed: the channel refused the message"),
    StatusType.DELIVERY_FAILED: (
        5001,
        "delivery failed: the channel could not reach the recipient",
    ),
    StatusType.WITHDRAW_FAILED: (8001, "withdraw failed: the channel refused to withdraw"),
}
_WITHDRAW_TOO_LATE: Final = (8002, "withdraw failed: already delivered, the channel cannot recall")
_WITHDRAW_CLICKED: Final = (8003, "withdraw failed: the recipient has already opened it")
# Channels that cannot take back what they delivered.
_NO_RECALL: Final = frozenset({"sms", "email"})


class Origin(Protocol):
    """What every record of one message carries besides the target's own fields."""

    @property
    def msgid(self) -> str: ...

    @property
    def channelkey(self) -> str: ...

    @property
    def params(self) -> dict[str, Any] | None: ...


@dataclass
class Target:
    """One recipient on one channel, and how far its lifecycle got."""

    userid: str
    sender_id: str
    channel: Channel
    fields: dict[str, int]
    reached: set[int] = field(default_factory=set)


class Played(NamedTuple):
    """What a send came to: recipients, their targets on the channels, the records."""

    recipients: int
    targets: list[Target]
    records: list[dict[str, Any]]


def play_send(
    message: Mapping[str, Any],
    *,
    kind: SendKind,
    origin: Origin,
    config: EmulatorConfig,
    rng: random.Random,
    now: int,
) -> Played:
    """Every target's records for one send, drawn from the send's own random stream."""
    recipients = _recipients(message, kind, config)
    platforms = _app_platforms(message)
    targets: list[Target] = []
    records: list[dict[str, Any]] = []

    def emit(target: Target, type_: StatusType) -> None:
        target.reached.add(type_)
        records.append(_target_record(origin, type_, target, now))

    for userid, validation_id, channels in recipients:
        valid = rng.random() >= config.invalid_share
        validation = StatusType.TARGET_VALID if valid else StatusType.TARGET_INVALID
        records.append(_record(origin, validation, userid, validation_id, SYSTEM_SENDER, {}, now))
        if not valid:
            continue
        for channel, sender_id in channels:
            target = Target(userid, sender_id, channel, _channel_fields(channel, platforms, rng))
            targets.append(target)
            if rng.random() < config.submit_fail_share:
                emit(target, StatusType.SUBMIT_FAILED)
                continue
            emit(target, StatusType.SUBMITTED)
            if rng.random() < config.delivery_fail_share:
                emit(target, StatusType.DELIVERY_FAILED)
                continue
            emit(target, StatusType.DELIVERED)
            if rng.random() < config.click_share:
                emit(target, StatusType.CLICKED)
    return Played(len(recipients), targets, records)


def play_withdraw(
    targets: Sequence[Target],
    *,
    origin: Origin,
    config: EmulatorConfig,
    rng: random.Random,
    now: int,
) -> list[dict[str, Any]]:
    """Withdrawn or withdraw failed for every target a channel took."""
    records = []
    for target in targets:
        if StatusType.SUBMITTED not in target.reached:
            continue  # invalid or never submitted: nothing to take back
        error: tuple[int, str] | None = None
        if StatusType.CLICKED in target.reached:
            error = _WITHDRAW_CLICKED
        elif StatusType.DELIVERED in target.reached and target.channel.name in _NO_RECALL:
            error = _WITHDRAW_TOO_LATE
        elif rng.random() < config.withdraw_fail_share:
            error = _ERRORS[StatusType.WITHDRAW_FAILED]
        type_ = StatusType.WITHDRAW_FAILED if error else StatusType.WITHDRAWN
        target.reached.add(type_)
        record = _target_record(origin, type_, target, now)
        if error:
            record["error"] = {"code": error[0], "message": error[1]}
        records.append(record)
    return records


def _recipients(
    message: Mapping[str, Any], kind: SendKind, cfg: EmulatorConfig
) -> list[tuple[str, str, list[tuple[Channel, str]]]]:
    """(userid, validation sender_id, [(channel, sender_id)]) per recipient, in order."""
    customs = [aud for aud in CUSTOM_AUDIENCES if aud in message]
    if customs:
        # Custom channel ids: userid "", sender_id the id, one validation record per id.
        by_id: dict[str, list[tuple[Channel, str]]] = {}
        for aud in customs:
            channel = CHANNEL_BY_AUDIENCE[aud]
            for entry in message[aud]:
                for ident in entry["data"]:
                    reached = by_id.setdefault(ident, [])
                    if (channel, ident) not in reached:
                        reached.append((channel, ident))
        return [("", ident, reached) for ident, reached in by_id.items()]
    userids: list[str] = []
    if kind.is_broadcast:
        userids += [f"broadcast_{i}" for i in range(1, cfg.broadcast_users + 1)]
    else:
        userids += message.get("aud_userid") or []
        for tag in message.get("aud_tag") or []:
            userids += [f"{tag}_{i}" for i in range(1, cfg.users_per_tag + 1)]
        for segment in message.get("aud_segment") or []:
            userids += [f"segment_{segment}_{i}" for i in range(1, cfg.users_per_tag + 1)]
    channels = _message_channels(message, kind, cfg)
    return [
        (userid, "", [(channel, _made_up_id(channel, userid)) for channel in channels])
        for userid in dict.fromkeys(userids)
    ]


def _message_channels(
    message: Mapping[str, Any], kind: SendKind, cfg: EmulatorConfig
) -> list[Channel]:
    if not kind.is_template:
        return [CHANNEL_BY_MSG[key] for key in MSG_CHANNELS if key in message]
    # The template's channels are set up in the UMS console; app_para means it has APP.
    names = list(cfg.template_channels)
    if message.get("app_para") is not None and "app" not in names:
        names.insert(0, "app")
    return [CHANNELS[name] for name in names]


def _made_up_id(channel: Channel, userid: str) -> str:
    """A stable channel id for a user: registration id, phone, e-mail, openid, ..."""
    h = hashlib.sha256(f"{channel.name}:{userid}".encode()).hexdigest()
    digits = str(int(h[:16], 16))
    if channel.name == "app":
        return h[:19]  # like a JPush RegistrationID
    if channel.name == "sms":
        return "13" + digits[:9].rjust(9, "0")
    if channel.name == "email":
        local = re.sub(r"[^A-Za-z0-9._-]", "", userid) or h[:10]
        return f"{local}@example.com"
    if channel.name in ("wechatoa", "wechatmp"):
        return "o" + h[:27]  # like an openid
    if channel.name == "alipay_life":
        return "2088" + digits[:12].rjust(12, "0")
    if channel.name == "dingtalk_cc":
        return digits[:12]
    if channel.name == "wechatwk_linkedcorp":
        return f"ww{h[:16]}/{userid}"
    return userid  # WeCom: the member's userid


def _app_platforms(message: Mapping[str, Any]) -> list[str]:
    """The platforms a message's APP content names ("all": Android and iOS)."""
    values = [entry.get("platform") for entry in message.get("msg_app") or []]
    if message.get("app_para") is not None:
        values.append(message["app_para"].get("platform"))
    platforms: list[str] = []
    for value in values:
        if value == "all":
            platforms += ["android", "ios"]
        elif isinstance(value, str):
            platforms.append(value)
        elif isinstance(value, list):
            platforms += [p for p in value if isinstance(p, str)]
    return [p for p in dict.fromkeys(platforms) if p in INDEX_BY_PLATFORM] or ["android"]


def _channel_fields(
    channel: Channel, platforms: Sequence[str], rng: random.Random
) -> dict[str, int]:
    if channel.name == "app":
        platform = rng.choice(platforms)
        return {
            "app_platform": INDEX_BY_PLATFORM[platform],
            "app_sender": rng.choice(VENDORS[platform]),
        }
    if channel.wechatwk_sender is not None:
        return {"wechatwk_sender": channel.wechatwk_sender}
    return {}


def _target_record(origin: Origin, type_: int, target: Target, sent_time: int) -> dict[str, Any]:
    return _record(
        origin,
        type_,
        target.userid,
        target.sender_id,
        target.channel.sender,
        target.fields,
        sent_time,
    )


def _record(
    origin: Origin,
    type_: int,
    userid: str,
    sender_id: str,
    sender: int,
    fields: Mapping[str, int],
    sent_time: int,
) -> dict[str, Any]:
    """One callback record, its fields in the order UMS's page lists them."""
    record: dict[str, Any] = {
        "type": int(type_),
        "channelkey": origin.channelkey,
        "msgid": origin.msgid,
        "userid": userid,
        "sender_id": sender_id,
        "sender": sender,
        **fields,
        "sent_time": sent_time,
    }
    if type_ in FAILURE_TYPES:
        code, text = _ERRORS[type_]
        record["error"] = {"code": code, "message": text}
    if origin.params is not None:
        record["params"] = copy.deepcopy(origin.params)
    return record
