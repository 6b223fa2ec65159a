"""Fixtures of the RongCloud tests: a fake RongCloud and its backup, simulated time, and
a sender on them that records in the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from receiver.sending.rongcloud import RongCloudSender
from tests.fake_rongcloud import FakeRongCloud
from tests.rongcloud.support import APP_KEY, APP_SECRET, FakeClock, options


@pytest.fixture
def fake() -> Iterator[FakeRongCloud]:
    with FakeRongCloud({APP_KEY: APP_SECRET}) as fake:
        yield fake


@pytest.fixture
def backup() -> Iterator[FakeRongCloud]:
    with FakeRongCloud({APP_KEY: APP_SECRET}) as backup:
        yield backup


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sender(engine: Engine, fake: FakeRongCloud, clock: FakeClock) -> RongCloudSender:
    return RongCloudSender(
        engine=engine, app_key=APP_KEY, app_secret=APP_SECRET, api_base=fake.url, **options(clock)
    )
