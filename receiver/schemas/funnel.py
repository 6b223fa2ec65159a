"""A message's funnel: per stage how many targets succeeded, failed or have not been
heard from (overall and per channel), the most frequent errors, and how long after the
send each stage was reached."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

StageName = Literal["validation", "submission", "delivery", "engagement", "withdrawal"]
STAGE_NAMES: tuple[StageName, ...] = (
    "validation",
    "submission",
    "delivery",
    "engagement",
    "withdrawal",
)


class StageCounts(BaseModel):
    """Targets by their outcome at one stage."""

    ok: int = Field(
        ge=0,
        description="Reached the stage's success, or a later stage's (a delivered target "
        "was submitted and valid; one on a channel was valid). Withdrawal counts only "
        "withdrawn.",
    )
    failed: int = Field(ge=0, description="Failed at this stage and got no further.")
    pending: int = Field(ge=0, description="Not heard from at this stage (yet).")


class StageFunnel(BaseModel):
    """The five stages in lifecycle order."""

    validation: StageCounts
    submission: StageCounts
    delivery: StageCounts
    engagement: StageCounts
    withdrawal: StageCounts


class ChannelFunnel(BaseModel):
    """The funnel of one channel's targets."""

    channel: str | None
    sender: int | None
    total: int = Field(ge=0)
    stages: StageFunnel


class Funnel(BaseModel):
    """All targets of a message (as in ``targets.total``), and per channel."""

    total: int = Field(ge=0)
    stages: StageFunnel
    channels: list[ChannelFunnel]


class ErrorCount(BaseModel):
    """An error code and how many targets failed with it at one stage."""

    code: int | None
    message: str | None = Field(description="One of the messages that came with the code.")
    stage: StageName
    targets: int = Field(ge=1)


class StageTiming(BaseModel):
    """Seconds from the send (or, for a message not sent here, its first event) to each
    target's success at a stage."""

    targets: int = Field(ge=0, description="Targets that reached the stage's success.")
    median_seconds: float | None
    p90_seconds: float | None


class Timing(BaseModel):
    """Stage timings in lifecycle order."""

    validation: StageTiming
    submission: StageTiming
    delivery: StageTiming
    engagement: StageTiming
    withdrawal: StageTiming
