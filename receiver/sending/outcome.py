"""What became of a send, in shapes both providers share: each request (a *part*) and
the whole send. The same models give the JSON answer of ``POST /api/messages`` (201,
and ``sent`` in its errors), the result ``umstrack send`` and ``umstrack
rongcloud-send`` print (``model_dump(mode="json")``), and its JSON schema for the
OpenAPI document (``model_json_schema(mode="serialization")``)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, computed_field

from sender.errors import NotSentError, ProviderRefusedError, SendError, UnknownOutcomeError
from sender.ums.protocol import SendKind


def _absent(value: Any) -> bool:
    return value is None


class SendPart(BaseModel):
    """One request of a send and what became of it."""

    # ``number`` in code, ``part`` in JSON; every field is in every answer but the
    # ones that are left out when absent (exclude_if).
    model_config = ConfigDict(
        frozen=True,
        validate_by_name=True,
        serialize_by_alias=True,
        json_schema_serialization_defaults_required=True,
    )

    number: int = Field(alias="part", ge=0, description="The request's number in its send, from 0.")
    recipients: int = Field(
        ge=0, description="Recipients it names; 0 for a broadcast, tags or segments."
    )
    code: int | None = Field(
        default=None,
        description="The provider's code; null when no answer came or nothing was sent.",
    )
    message: str | None = Field(
        default=None, description="The provider's message, or why no answer came."
    )
    recorded_as: str | None = Field(
        default=None, description="The id of the message row it is recorded under; null if none is."
    )
    recorded: bool = Field(
        default=False,
        description="Whether the provider's answer is recorded. False after a send only when "
        "the database failed once the provider had answered: the request stays recorded "
        "under recorded_as as sent but unanswered, and reads as outcome unknown.",
    )


class UmsPart(SendPart):
    """One request to UMS."""

    msgid: str | None = Field(default=None, description="UMS's msgid; null when none came back.")
    sendno: str | None = None
    body: dict[str, Any] | None = Field(
        default=None,
        exclude_if=_absent,
        description="On a dry run only: the request as it would go out.",
    )


class RongCloudPart(SendPart):
    """One request to RongCloud (at most 1000 recipients)."""

    status: Literal["submitted", "failed", "not_tried"]
    base_url: str | None = Field(default=None, description="The domain that answered (or failed).")
    message_uids: list[Any] | None = Field(
        default=None,
        description="RongCloud's messageUIDs ([{userId, messageUID}]), when it gave any.",
    )


PartT = TypeVar("PartT", bound=SendPart)


class SendOutcome(BaseModel, Generic[PartT]):
    """A whole send: its id and its parts (sent, failed, or not tried)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    send_id: str = Field(description="Shared by every part; rides in callback.params.")
    dry_run: bool = False
    parts: list[PartT] = Field(default_factory=list)


class SentMessage(BaseModel):
    """Where to read one message a send made."""

    msgid: str
    url: str = Field(json_schema_extra={"format": "uri"})


class UmsOutcome(SendOutcome[UmsPart]):
    """A send through UMS: one channel, one kind, one msgid per request."""

    kind: SendKind
    channelkey: str | None = Field(
        description="The channel it goes through; null only on a dry run with no channel "
        "configured."
    )
    messages: list[SentMessage] | None = Field(
        default=None,
        exclude_if=_absent,
        description="POST /api/messages only: each msgid with its summary's URL.",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def msgids(self) -> list[str]:
        """UMS's msgids, one per request it accepted."""
        return [p.msgid for p in self.parts if p.msgid]

    def linked(self, base_url: str) -> UmsOutcome:
        """This outcome with ``messages``: each msgid and the URL of its summary."""
        base = base_url.rstrip("/")
        linked = [SentMessage(msgid=m, url=base + summary_path(m)) for m in self.msgids]
        return self.model_copy(update={"messages": linked})


class RongCloudOutcome(SendOutcome[RongCloudPart]):
    """A send of a RongCloud template private message, recorded under ids of ours."""

    provider: Literal["rongcloud"] = "rongcloud"
    app_key: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def recipients(self) -> int:
        """Recipients of the whole send."""
        return sum(p.recipients for p in self.parts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def submitted(self) -> int:
        """Recipients of the requests RongCloud accepted."""
        return sum(p.recipients for p in self.parts if p.status == "submitted")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def messages(self) -> list[str]:
        """Ids of the recorded messages (one per request that went out or failed)."""
        return [p.recorded_as for p in self.parts if p.recorded_as]


class SendFailedError(Exception):
    """A request of a send failed (and was recorded). ``error`` says why, by meaning
    (refused, not sent, unknown outcome); ``outcome`` says which requests went out
    before it."""

    def __init__(self, error: SendError, outcome: SendOutcome[Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


def failure_answer(error: SendError) -> tuple[int | None, str]:
    """The code and message a failed request is reported and recorded with."""
    if isinstance(error, ProviderRefusedError):
        return error.code, error.message or str(error)
    if isinstance(error, UnknownOutcomeError):
        return None, f"outcome unknown (the message may have been sent): {error.reason}"
    if isinstance(error, NotSentError):
        return None, f"not sent: {error.reason}"
    return None, str(error)


def failure_state(error: SendError) -> str:
    """The state a failed request is recorded in: refused, not_sent or unknown."""
    if isinstance(error, ProviderRefusedError):
        return "refused"
    if isinstance(error, NotSentError):
        return "not_sent"
    return "unknown"


def summary_path(msgid: str) -> str:
    """The read API path of a message's summary."""
    return "/api/messages/" + quote(msgid, safe=":@!$&'()*+,;=")
