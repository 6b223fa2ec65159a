"""A UMS send request: the body of ``POST /api/messages`` and the FILE of ``umstrack
send``. Its keys are a UMS message, plus optional keys of ours that say how to send it:
``broadcast``, ``template``, ``channelkey`` and, for a personalised send,
``recipients``."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from sender.errors import InvalidMessageError
from sender.ums.protocol import SendKind

from ..schemas.storable import Unstorable, unstorable

# What a key of ours must be, by pydantic's error type; other errors carry their own.
_REASONS = {
    "model_type": "must be a JSON object",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
}


class SendRequest(BaseModel):
    """A UMS message (the extra keys: aud_xxx, msg_xxx, rule_id, option, callback;
    template_id, template_para, app_para for template sends) and how to send it. With
    ``recipients``, the message is a template whose strings may hold ``{name}``
    placeholders, rendered per recipient."""

    # Strict: JSON's true, strings and arrays only, never a coerced 1 or "yes".
    model_config = ConfigDict(extra="allow", frozen=True, strict=True, validate_default=True)

    broadcast: bool = Field(default=False, description="/v1/broadcast: no aud_* targets.")
    template: bool = Field(default=False, description="A template send (template_id).")
    channelkey: str | None = Field(
        default=None, description="Channel to send with; default the first one."
    )
    recipients: list[Any] | None = Field(
        default=None,
        description='Personalised send: one entry per recipient, {"to": {"aud_userid": '
        '"u1"}, "values": {"name": "Tom"}}.',
    )

    @model_validator(mode="before")
    @classmethod
    def _channel_option(cls, data: Any, info: ValidationInfo) -> Any:
        """A channel given as an option (``--channel``) counts unless the body names one."""
        channelkey = (info.context or {}).get("channelkey")
        if isinstance(data, dict) and channelkey is not None and "channelkey" not in data:
            return {**data, "channelkey": channelkey}
        return data

    @field_validator("broadcast", "template")
    @classmethod
    def _flag_option(cls, value: bool, info: ValidationInfo) -> bool:
        """A flag given as an option (``--broadcast``) turns the key on too."""
        return value or bool((info.context or {}).get(info.field_name))

    @field_validator("recipients")
    @classmethod
    def _no_personalised_broadcast(cls, value: list[Any] | None, info: ValidationInfo) -> Any:
        if value is not None and info.data.get("broadcast"):
            raise PydanticCustomError(
                "personalised_broadcast", "a personalised send names its recipients: no broadcast"
            )
        return value

    @property
    def kind(self) -> SendKind:
        """Which of the four UMS send endpoints the request goes to."""
        return {
            (False, False): SendKind.SENT,
            (True, False): SendKind.BROADCAST,
            (False, True): SendKind.TEMPLATE_SENT,
            (True, True): SendKind.TEMPLATE_BROADCAST,
        }[self.broadcast, self.template]

    @property
    def message(self) -> dict[str, Any]:
        """The UMS message: every key that is not ours."""
        return dict(self.model_extra or {})


def parse_request(
    body: Any,
    *,
    broadcast: bool = False,
    template: bool = False,
    channelkey: str | None = None,
) -> SendRequest:
    """A send request from a JSON body; the keyword arguments (command-line options) add
    to its keys. Raises InvalidMessageError naming the key at fault."""
    options = {"broadcast": broadcast, "template": template, "channelkey": channelkey}
    try:
        request = SendRequest.model_validate(body, context=options)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)[0]) from None
    # Refused before anything is recorded or sent: a send that UMS took but the database
    # could not record would leave its caller without the msgid.
    if found := unstorable(body):
        raise InvalidMessageError(found.path or "message", unstorable_reason(found))
    return request


def unstorable_reason(found: Unstorable) -> str:
    """The reason a send with an unstorable value is refused, for the field it names."""
    return f"a field name here {found.problem}" if found.in_name else found.problem


def _invalid(error: ErrorDetails) -> InvalidMessageError:
    """The first thing pydantic found, as the provider side reports a broken rule."""
    field = ".".join(str(part) for part in error["loc"]) or "message"
    return InvalidMessageError(field, _REASONS.get(error["type"], error["msg"]))
