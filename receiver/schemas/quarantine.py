"""The quarantine list's query parameters and answers."""

from __future__ import annotations

from pydantic import BaseModel, Field

from .common import Time
from .queries import PageQuery, QueryTime, Text


class QuarantineQuery(PageQuery):
    """The parameters of ``GET /api/quarantine``."""

    reason: Text | None = Field(
        None,
        description="Only input kept for this reason, as `counts` names it (a record's "
        "reason without its place in its batch: `msgid is missing`, not `record 3: msgid "
        "is missing`).",
    )
    channel: Text | None = Field(
        None, description="Only input that came from this UMS channel (its channelkey)."
    )
    since: QueryTime | None = Field(
        None,
        description="Only input received at or after this time. ISO 8601; without an "
        "offset UTC is assumed.",
    )


class QuarantinedInput(BaseModel):
    """One input the intake could not use: a record, or a whole body that was not a batch."""

    id: int
    received_at: Time
    channelkey: str | None = Field(description="The UMS channel that posted it.")
    channel: str | None = Field(
        description="The channel name of the record's sender (as targets name channels), "
        "when the input is a record object with an integer sender; else null."
    )
    reason: str = Field(
        description="Why it was kept: for a record, its place in its batch and the first "
        "problem found (`record 3: msgid is missing`); for a whole body, what was wrong "
        "with it."
    )
    cause: str = Field(description="The reason without the record's place in its batch.")
    raw: str = Field(
        description="The input as text, exactly as kept: a record as JSON text, a body as "
        "the text that arrived (undecodable bytes and NUL as \\xNN escapes). Never parsed "
        "here: it is what could not be used."
    )
    replayed_at: Time | None = Field(
        description="When `umstrack quarantine replay` last ran it through the intake "
        "again; null if never."
    )
    replay_result: str | None = Field(
        description="What that replay made of it: `stored` (new events), `duplicate` "
        "(every record was already stored), or `quarantined: <reason>` (still unusable)."
    )


class ReasonCount(BaseModel):
    """How many kept inputs one cause holds."""

    reason: str
    count: int = Field(ge=1)


class QuarantinePage(BaseModel):
    """One page of the quarantine, newest first, and the counts of the whole selection."""

    items: list[QuarantinedInput]
    counts: list[ReasonCount] = Field(
        description="How many inputs each cause holds among all those the filters select "
        "(every page, not only this one), the most frequent first."
    )
    next_cursor: str | None
