"""The fake UMS server and a UmsClient on it, for the UmsClient tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sender.ums.client import UmsClient
from tests.fake_ums import FakeUms
from tests.ums_client import CALLBACK, CHANNEL, SECRET, TIMEOUT


@pytest.fixture
def fake() -> Iterator[FakeUms]:
    with FakeUms({CHANNEL: SECRET}) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(fake: FakeUms, sleeps: list[float]) -> Iterator[UmsClient]:
    with UmsClient(
        CHANNEL, SECRET, fake.url, callback_url=CALLBACK, timeout=TIMEOUT, sleep=sleeps.append
    ) as ums:
        yield ums
