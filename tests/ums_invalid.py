"""Every failing case of the UMS rule tests in one list, for the tests that run them
through another path too (the sender's, in test_sending)."""

from __future__ import annotations

from typing import Any

from tests import (
    test_ums_rules_audience,
    test_ums_rules_channels,
    test_ums_rules_message,
    test_ums_rules_template,
    test_ums_rules_wechatwk,
)

# pytest.param(kind, message, field, code, id=...) each.
INVALID: list[Any] = [
    *test_ums_rules_message.INVALID,
    *test_ums_rules_audience.INVALID,
    *test_ums_rules_channels.INVALID,
    *test_ums_rules_wechatwk.INVALID,
    *test_ums_rules_template.INVALID,
]
