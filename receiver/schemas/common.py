"""Shapes every part of the API shares: times, status names, the error answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer, WithJsonSchema

# A timezone-aware time, written as Python's isoformat ("+00:00", not "Z"), as every
# time in the API has been since the start.
Time = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

Status = Literal[
    "target_valid",
    "target_invalid",
    "submitted",
    "submit_failed",
    "delivered",
    "delivery_failed",
    "clicked",
    "withdrawn",
    "withdraw_failed",
]
"""A status name; tests check that it lists sender.ums.protocol.STATUSES, in type order."""


class Error(BaseModel):
    """The one shape of every JSON error."""

    error: str
    message: str


class ProviderAnswer(BaseModel):
    """A provider's business code and message (null code: no answer came)."""

    code: int | None
    message: str | None
