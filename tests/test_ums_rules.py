"""Every case of the UMS message rules: the valid ones pass, each invalid one fails on
its field with UMS's business code (the cases: tests/test_ums_rules_<theme>.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.ums_cases import INVALID, VALID
from tests.ums_examples import assert_accepted, assert_refused


@pytest.mark.parametrize(("kind", "message"), VALID)
def test_valid_messages_pass(kind: str, message: dict[str, Any]) -> None:
    assert_accepted(kind, message)


@pytest.mark.parametrize(("kind", "message", "field", "code"), INVALID)
def test_invalid_messages_fail(kind: str, message: Any, field: str, code: int) -> None:
    assert_refused(kind, message, field, code)
