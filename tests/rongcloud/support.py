"""What the RongCloud tests share: the example message, simulated time, clients on a
fake RongCloud."""

from __future__ import annotations

import copy
from typing import Any

from receiver.local import free_port
from sender.rongcloud import RateLimiter, RongCloudClient

APP_KEY = "rc-app-key-8f2b1d"
APP_SECRET = "rc-secret-5e98a7c6"
T0 = 1_700_000_000.0

# The example of RongCloud's 发送单聊模板消息 page: one content with {c}{d}, a value
# map and push text per recipient.
DOC_EXAMPLE: dict[str, Any] = {
    "fromUserId": "system",
    "toUserId": ["21", "22", "23"],
    "objectName": "RC:TxtMsg",
    "content": '{"content":"{c}{d}","extra":"bb"}',
    "values": [
        {"{c}": "Tom", "{d}": ":2"},
        {"{c}": "Jerry", "{d}": ":5"},
        {"{c}": "Rose", "{d}": ":10"},
    ],
    "pushContent": ["hello {c}", "hello {c}", "hello {c}"],
}


def example(**changes: Any) -> dict[str, Any]:
    """The documentation's example message with some fields replaced (None removes one)."""
    message = copy.deepcopy(DOC_EXAMPLE)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    return message


def many(n: int) -> dict[str, Any]:
    """A message to n recipients u00000..., each with its own name."""
    users = [f"u{i:05d}" for i in range(n)]
    return example(
        toUserId=users,
        values=[{"{c}": f"name{i}", "{d}": f":{i}"} for i in range(n)],
        pushContent=["hello {c}"] * n,
    )


class FakeClock:
    """Simulated time: calling it reads the time, sleep() moves it on."""

    def __init__(self, start: float = T0) -> None:
        self.start = self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def options(clock: FakeClock, **extra: Any) -> dict[str, Any]:
    """Client options for tests: simulated time everywhere, and a limiter of its own
    (the process-wide one would carry capacity over from test to test)."""
    return {
        "timeout": (2.0, 10.0),
        "sleep": clock.sleep,
        "limiter": RateLimiter(clock=clock, sleep=clock.sleep),
        "wall_clock": clock,
        **extra,
    }


def client_for(base: str, clock: FakeClock, **extra: Any) -> RongCloudClient:
    """A client of the test app on ``base``, on simulated time."""
    secret = extra.pop("app_secret", APP_SECRET)
    return RongCloudClient(APP_KEY, secret, base, **options(clock, **extra))


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()
