"""The UMS status model: callback types, their names, stages and precedence."""

from __future__ import annotations

from enum import IntEnum


class Stage(IntEnum):
    """Lifecycle stages in the order a target moves through them."""

    VALIDATION = 0
    SUBMISSION = 1
    DELIVERY = 2
    ENGAGEMENT = 3
    WITHDRAWAL = 4


# type -> (status name, stage, success?)
_TYPES: dict[int, tuple[str, Stage, bool]] = {
    0: ("target_valid", Stage.VALIDATION, True),
    1: ("target_invalid", Stage.VALIDATION, False),
    2: ("submitted", Stage.SUBMISSION, True),
    3: ("submit_failed", Stage.SUBMISSION, False),
    4: ("delivered", Stage.DELIVERY, True),
    5: ("delivery_failed", Stage.DELIVERY, False),
    6: ("clicked", Stage.ENGAGEMENT, True),
    7: ("withdrawn", Stage.WITHDRAWAL, True),
    8: ("withdraw_failed", Stage.WITHDRAWAL, False),
}

STATUS_BY_TYPE: dict[int, str] = {t: name for t, (name, _, _) in _TYPES.items()}
TYPE_BY_STATUS: dict[str, int] = {name: t for t, name in STATUS_BY_TYPE.items()}
STATUSES: tuple[str, ...] = tuple(STATUS_BY_TYPE[t] for t in sorted(STATUS_BY_TYPE))

# Types whose records carry an `error` object.
FAILURE_TYPES: frozenset[int] = frozenset(t for t, (_, _, ok) in _TYPES.items() if not ok)

# A target's current status is the event of highest rank: a later stage always
# wins, and within a stage a success beats a failure. Arrival order never matters.
RANK_BY_TYPE: dict[int, int] = {t: stage * 2 + int(ok) for t, (_, stage, ok) in _TYPES.items()}


def rank(type_: int) -> int:
    """Precedence of a callback type when deciding a target's current status."""
    return RANK_BY_TYPE[type_]


# Not a UMS value: events umstrack records itself for RongCloud sends.
RONGCLOUD_SENDER = 100

# UMS `sender` values (providers.md 1.2). 8..10 are ambiguous in the only public
# source; see channel_name().
_CHANNEL_BY_SENDER: dict[int, str] = {
    0: "ums",
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


def channel_name(sender: int | None, *, wechatwk_sender: int | None = None) -> str | None:
    """Channel name for a record's ``sender`` value; unknown values read ``unknown:<n>``.

    The public SDK says 9 is WeCom in a comment and 5G messaging in code; a record
    with ``wechatwk_sender`` (only sent for WeCom) settles it.
    """
    if sender is None:
        return None
    if sender == 9:
        return "wechatwk" if wechatwk_sender is not None else "5g"
    return _CHANNEL_BY_SENDER.get(sender, f"unknown:{sender}")
