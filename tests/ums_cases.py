"""Every case of the UMS rule tests, gathered from the themed files (which hold the
cases and the special tests): run by test_ums_rules.py, and the failing ones through
the sender too (test_sending)."""

from __future__ import annotations

from typing import Any

from tests import (
    test_ums_rules_audience,
    test_ums_rules_channels,
    test_ums_rules_message,
    test_ums_rules_template,
    test_ums_rules_wechatwk,
)

# pytest.param(kind, message, id=...) each.
VALID: list[Any] = [
    *test_ums_rules_message.VALID,
    *test_ums_rules_audience.VALID,
    *test_ums_rules_channels.VALID,
    *test_ums_rules_wechatwk.VALID,
    *test_ums_rules_template.VALID,
]
# pytest.param(kind, message, field, code, id=...) each.
INVALID: list[Any] = [
    *test_ums_rules_message.INVALID,
    *test_ums_rules_audience.INVALID,
    *test_ums_rules_channels.INVALID,
    *test_ums_rules_wechatwk.INVALID,
    *test_ums_rules_template.INVALID,
]
