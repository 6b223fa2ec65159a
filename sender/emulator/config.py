"""How the emulator behaves: channels, UMS's delivery timing, the outcome mix and faults.

The timing defaults are UMS's own (消息回调设置, Message callback settings): a batch
holds at most 100 records, or what gathered in 10 s; a failed batch is retried every
50 s, at most 3 times. A message can be withdrawn within 24 h of its send (撤回消息,
Withdraw a message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..ums.protocol import INVALID_PARAMETER
from ..values import is_http_url
from .channels import CHANNELS

# UMS documents no code for "no such message"; 4004 (invalid parameter) is the closest.
MESSAGE_NOT_FOUND: Final = INVALID_PARAMETER
WITHDRAW_WINDOW_SECONDS: Final = 24 * 3600
MAX_REQUEST_BYTES: Final = 16 << 20
MAX_IDLE_WAIT_SECONDS: Final = 300.0
DEFAULT_PORT: Final = 8001

_SHARES: Final = (
    "invalid_share",
    "submit_fail_share",
    "delivery_fail_share",
    "click_share",
    "withdraw_fail_share",
    "delay_share",
)
_SECONDS: Final = ("flush_interval", "retry_interval", "delay_seconds")
_COUNTS: Final = ("max_retries", "users_per_tag", "broadcast_users", "port")


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator behaves: channels, UMS's delivery timing, outcome mix, faults."""

    channels: Mapping[str, str]
    port: int = 0  # 0: a free port
    flush_interval: float = 10.0  # seconds a batch gathers records before it goes
    retry_interval: float = 50.0  # seconds between attempts of a failed batch
    max_retries: int = 3  # retries of a failed batch before it is dropped
    batch_size: int = 100  # records per POST at most
    seed: int | None = None  # None: a random seed, shown in state()
    invalid_share: float = 0.05
    submit_fail_share: float = 0.05
    delivery_fail_share: float = 0.1
    click_share: float = 0.3
    withdraw_fail_share: float = 0.2
    users_per_tag: int = 5  # made-up users per aud_tag tag and per aud_segment segment
    broadcast_users: int = 10  # made-up users a broadcast reaches
    template_channels: tuple[str, ...] = ("sms", "email")  # plus app when app_para is given
    duplicate_batches: bool = False  # fault: POST every batch twice
    shuffle: bool = False  # fault: records and batches leave in random order
    delay_share: float = 0.0  # fault: share of records held back ...
    delay_seconds: float = 15.0  # ... this long before they join a batch
    default_callback_url: str | None = None  # for messages without callback.url
    timeout: tuple[float, float] = (3.05, 10.0)  # (connect, read) of every callback call

    def __post_init__(self) -> None:
        if not self.channels:
            raise ValueError("at least one channel (channelkey: mastersecret) is required")
        for key, secret in self.channels.items():
            if not key or ":" in key or not secret:
                raise ValueError(f"bad channel {key!r}: need a channelkey without ':' and a secret")
        for name in _SHARES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        for name in _SECONDS + _COUNTS:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        unknown = [name for name in self.template_channels if name not in CHANNELS]
        if unknown:
            raise ValueError(f"unknown template channel(s): {', '.join(unknown)}")
        if min(self.timeout) <= 0:
            raise ValueError("timeouts must be positive (connect, read) seconds")
        if self.default_callback_url is not None and not is_http_url(self.default_callback_url):
            raise ValueError(
                f"default_callback_url must be an http(s) URL, got {self.default_callback_url!r}"
            )
