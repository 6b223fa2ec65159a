"""What the read API answers: message summaries, events, targets and their pages.

Plain pydantic models (SQLModel's non-table models are these too, with an __init__
several times slower, which a page of 1000 events would feel). The read layer
builds them; the web layer serializes them; the OpenAPI document is made from them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .common import ProviderAnswer, Status, Time
from .funnel import ErrorCount, Funnel, StageName, Timing

_PARAMS = "The sender's callback params (callback.params), passed back unchanged."


class StatusCounts(BaseModel):
    """A count for each of the nine status names."""

    target_valid: int = Field(0, ge=0)
    target_invalid: int = Field(0, ge=0)
    submitted: int = Field(0, ge=0)
    submit_failed: int = Field(0, ge=0)
    delivered: int = Field(0, ge=0)
    delivery_failed: int = Field(0, ge=0)
    clicked: int = Field(0, ge=0)
    withdrawn: int = Field(0, ge=0)
    withdraw_failed: int = Field(0, ge=0)


class TargetCounts(BaseModel):
    """A message's targets and their current statuses."""

    total: int = Field(ge=0)
    by_status: StatusCounts


SendOutcome = Literal["pending", "sent", "refused", "not_sent", "unknown"]
WithdrawState = Literal["pending", "accepted", "refused", "not_sent", "unknown"]


class SendFacts(ProviderAnswer):
    """What became of this service's request: recorded before it left, completed when
    the provider answered."""

    outcome: SendOutcome = Field(
        description="pending: recorded, the request is leaving or awaiting its answer; "
        "sent: the provider accepted it; refused: the provider answered with an error; "
        "not_sent: it provably never reached the provider (or was never tried); unknown: "
        "it left and no answer was recorded (no answer came, or the process or the "
        "database failed before recording it), so it may have been sent. Never resent "
        "automatically."
    )


class WithdrawFacts(BaseModel):
    """A withdraw of this message through this service (POST /v1/retract/{msgid})."""

    state: WithdrawState = Field(
        description="pending: recorded, awaiting UMS's answer; accepted: UMS took it (the "
        "per-target outcome arrives as withdrawn / withdraw_failed events); refused: UMS "
        "answered with an error (1015055: it already was withdrawn); not_sent: it provably "
        "never reached UMS, so a later withdraw may try again; unknown: it left and no "
        "answer was recorded, so it may have been withdrawn. Never resent automatically."
    )
    requested_at: Time
    answered_at: Time | None
    code: int | None = Field(description="UMS's business code; null when no answer came.")
    message: str | None


class MessageSummary(BaseModel):
    """Everything known of one message."""

    msgid: str
    provider: str = Field(description="ums or rongcloud.")
    channelkey: str | None
    sendno: str | None
    params: dict[str, Any] | None = Field(description=_PARAMS)
    created_at: Time = Field(description="When this service first knew of the message.")
    sent_at: Time | None = Field(description="When this service sent it; null if it did not.")
    send: SendFacts | None = Field(
        description="This service's request and the provider's answer; null if this "
        "service did not send it. code is null when no answer came (the message says why)."
    )
    withdraw: WithdrawFacts | None = Field(
        description="A withdraw through this service; null if none was asked for."
    )
    send_id: str | None = Field(
        description="The send this message is a part of (callback param umstrack_send); a "
        "send over 1000 recipients, or with personalised contents, has several parts."
    )
    part: int | None = Field(description="The part's number within its send, from 0.")
    counts: StatusCounts = Field(description="Events per status name.")
    targets: TargetCounts
    funnel: Funnel
    stale: int = Field(
        ge=0,
        description="Targets UMS still owes a report on (current status target_valid or "
        "submitted) that nothing arrived for in the last STALE_AFTER minutes (default 30).",
    )
    errors: list[ErrorCount] | None = Field(
        description="The most frequent error codes (at most 10), most frequent first; "
        "null in lists (read the message's summary)."
    )
    timing: Timing | None = Field(
        description="How long after the send each stage was reached (median and p90); null "
        "in lists (read the message's summary)."
    )
    first_event_at: Time | None
    last_event_at: Time | None


class EventError(BaseModel):
    """The failure reason a failed status carries."""

    code: int | None
    message: str | None


class Event(BaseModel):
    """One stored callback record."""

    type: int = Field(ge=0, le=8)
    status: Status
    userid: str | None
    sender_id: str | None
    sender: int | None
    channel: str | None = Field(
        description="Channel name of sender: ums, app, wechatoa, wechatmp, email, sms, "
        "dingtalk_cc, alipay_life, 5g, wechatwk, rongcloud, or unknown:<n>."
    )
    app_platform: str | None = Field(
        description="android, ios, web, quickapp, hmos, or the value UMS gave."
    )
    app_vendor: str | None = Field(
        description="Name of app_sender: jiguang, huawei, oppo, vivo, xiaomi, meizu, fcm, "
        "apns, or unknown:<n>."
    )
    occurred_at: Time = Field(description="From sent_time; the arrival time if UMS gave none.")
    received_at: Time
    error: EventError | None
    params: dict[str, Any] | None = Field(description=_PARAMS)


class StageOutcome(BaseModel):
    """What a target reached at one stage, when, and the error of a failure."""

    status: Status
    at: Time = Field(description="When the status was first reached.")
    error: EventError | None


class Target(BaseModel):
    """One recipient of one message on one channel, and its status. A recipient's
    records from UMS itself (sender 0: validation) count as a target of their own only
    until a channel reports on them."""

    recipient: str = Field(description="userid when UMS gives one, else sender_id.")
    userid: str | None
    sender_id: str | None
    sender: int | None = Field(description="null when the records name no sender.")
    channel: str | None
    status: Status = Field(description="Current status: by stage, never by arrival order.")
    reached_at: Time = Field(description="When the current status was first reached.")
    event_count: int = Field(ge=0)
    stages: dict[StageName, StageOutcome] = Field(
        description="Each stage's outcome, merged by the same rule as the current status "
        "(a success beats a failure); stages never heard of are absent."
    )


class TimelinePage(BaseModel):
    """One page of a message's timeline."""

    msgid: str
    events: list[Event]
    next_cursor: str | None


class TargetPage(BaseModel):
    """One page of a message's targets."""

    msgid: str
    targets: list[Target]
    next_cursor: str | None


class MessagePage(BaseModel):
    """One page of message summaries."""

    messages: list[MessageSummary]
    next_cursor: str | None


class RecipientEvent(Event):
    """One stored callback record of a recipient, and the message it is about."""

    msgid: str


class RecipientEventPage(BaseModel):
    """One page of a recipient's events across all messages, newest first."""

    recipient: str
    events: list[RecipientEvent]
    next_cursor: str | None
