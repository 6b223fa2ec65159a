"""A UMS status callback record, and what became of a posted batch.

The record's fields are those of UMS's 消息回调设置 (Message callback settings) page
and, past the field the page's public copy ends at, of the Go SDK
cavlabs/jiguang-sdk-go (``api/jums/callback``), which marks every field but ``type``
optional. Unknown fields are kept. A record that does not fit is quarantined with the
reason :func:`record_problems` gives, never refused with the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails
from sqlmodel import SQLModel

from sender.ums.protocol import STATUS_BY_TYPE

from .bounds import (
    MAX_DEPTH,
    MAX_ERROR_MESSAGE_CHARS,
    MAX_KEY_CHARS,
    MAX_PARAMS_BYTES,
    MAX_PLATFORM_CHARS,
    MAX_SENT_TIME,
    shape_problem,
)

Key = Annotated[StrictStr, Field(max_length=MAX_KEY_CHARS)]

SMALLINT = Annotated[StrictInt, Field(ge=-(2**15), le=2**15 - 1)]
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


# Plain pydantic models, strict, ignoring (not copying) unknown fields: intake only
# asks whether a record fits, and SQLModel's models validate several times slower.
# The stored record is the one that arrived, unknown fields included.
_CHECK_ONLY = ConfigDict(
    strict=True, extra="ignore", json_schema_extra={"additionalProperties": True}
)


class RecordError(BaseModel):
    """The failure reason of a failed status (types 1, 3, 5 and 8)."""

    model_config = _CHECK_ONLY

    # UMS may send the code as a string of digits: it is read as the number.
    code: (
        Annotated[StrictInt, Field(ge=BIGINT_MIN, le=BIGINT_MAX)]
        | Annotated[StrictStr, Field(pattern=r"^-?[0-9]{1,18}$")]
        | None
    ) = Field(default=None, description="An integer, or a string of its digits.")
    message: Annotated[StrictStr, Field(max_length=MAX_ERROR_MESSAGE_CHARS)] | None = None


class CallbackRecord(BaseModel):
    """One UMS status record. Fields that do not apply may be missing; unknown fields are
    kept."""

    # Fields are checked in this order (the channel between type and userid: see
    # record_problems); a record's first problem is its reason. Every check runs in
    # pydantic's core, without a call into Python per record: intake is a hot path.
    model_config = _CHECK_ONLY

    msgid: StrictStr = Field(
        pattern=r"\S", max_length=MAX_KEY_CHARS, description="The UMS msgid; it contains ':'."
    )
    type: StrictInt = Field(
        ge=min(STATUS_BY_TYPE),
        le=max(STATUS_BY_TYPE),
        description="0 target valid, 1 target invalid, 2 submitted, 3 submit failed, "
        "4 delivered, 5 delivery failed, 6 clicked, 7 withdrawn, 8 withdraw failed.",
    )
    channelkey: Key | None = Field(
        default=None, description="Empty, or the authenticated channel's key."
    )
    userid: Key | None = Field(
        default=None, description="UMS userid; empty for custom channel ids."
    )
    sender_id: Key | None = Field(
        default=None, description="Channel registration id (e.g. a phone number)."
    )
    sender: SMALLINT | None = Field(
        default=None,
        description="Channel: 0 UMS, 1 app, 2 WeChat OA, 3 WeChat mini-program, 4 email, "
        "5 SMS, 6 DingTalk, 7 Alipay Life, 8-10 5G / WeCom; unknown values are kept.",
    )
    wechatwk_sender: SMALLINT | None = Field(
        default=None, description="WeCom only: 0 internal API, 1 linked-corp API."
    )
    app_sender: SMALLINT | None = Field(
        default=None,
        description="App only: vendor channel, 0 Jiguang, 1 Huawei, 2 OPPO, 3 vivo, "
        "4 Xiaomi, 5 Meizu, 6 FCM, 8 APNs.",
    )
    app_platform: StrictInt | Annotated[StrictStr, Field(max_length=MAX_PLATFORM_CHARS)] | None = (
        Field(
            default=None,
            description="App only: 0 android, 1 ios, 2 web, 3 quickapp, 4 hmos, or a name.",
        )
    )
    sent_time: StrictInt | None = Field(
        default=None,
        ge=0,
        le=MAX_SENT_TIME,
        description="Unix time of the record, seconds or milliseconds.",
    )
    error: RecordError | None = Field(
        default=None, description="Failure reason; types 1, 3, 5 and 8 only."
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="The sender's callback.params, passed back: at most "
        f"{MAX_PARAMS_BYTES} bytes as JSON, nested at most {MAX_DEPTH} levels.",
    )


class BatchResult(SQLModel):
    """What became of one posted batch."""

    received: int = Field(ge=0)
    stored: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    quarantined: int = Field(ge=0)


class SpooledResult(SQLModel):
    """A batch kept in the outage spool: the database was unavailable, and the batch is
    stored (with the same checks) once the spool drains."""

    received: int = Field(ge=0)
    spooled: int = Field(ge=0)


class IntakeResult(RootModel[BatchResult | SpooledResult]):
    """What became of a posted batch: handled now, or kept in the outage spool."""


_RECORDS = TypeAdapter(list[CallbackRecord])
_KINDS = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
# Pydantic error types, as the reasons a quarantined record is kept with.
_REASONS = {
    "int_type": "is not an integer",
    "string_type": "is not a string",
    "dict_type": "is not an object",
    "model_type": "is not an object",
    "model_attributes_type": "is not an object",
    "string_unicode": "contains a lone UTF-16 surrogate, not valid Unicode",
}


def record_problems(records: Sequence[Any], *, channelkey: str) -> dict[int, str]:
    """The records of a batch that cannot be stored as events of ``channelkey``, by
    index, each with its first problem as a sentence (``type is not an integer``)."""
    problems: dict[int, tuple[str, str]] = {}  # index -> (field, reason)
    try:
        _RECORDS.validate_python(records)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            index = error["loc"][0]
            if isinstance(index, int) and index not in problems:
                problems[index] = _reason(error, records[index])
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            continue
        # A record of another channel: checked after msgid and type, before the rest.
        given = record.get("channelkey")
        if given not in (None, "", channelkey):
            if problems.get(index, ("",))[0] not in ("msgid", "type"):
                reason = f"channelkey {given!r} is not the authenticated channel {channelkey!r}"
                problems[index] = ("channelkey", reason)
        # What pydantic does not look into: how deep values nest, how large params are.
        elif index not in problems and (problem := shape_problem(record)) is not None:
            problems[index] = ("", problem)
    return {index: reason for index, (_, reason) in problems.items()}


class UnreadableRecord(str):
    """The text of a record nested too deeply for the parser to read, kept as it is,
    and the field that nests so deep (empty when unknown)."""

    field: str

    def __new__(cls, text: str, field: str = "") -> UnreadableRecord:
        record = super().__new__(cls, text)
        record.field = field
        return record


def _reason(error: ErrorDetails, record: Any) -> tuple[str, str]:
    if isinstance(record, UnreadableRecord):
        name = f"{record.field} is" if record.field else "is"
        return "", f"{name} nested too deeply to read (more than {MAX_DEPTH} levels)"
    if not isinstance(record, dict):
        return "", f"not a JSON object but {_KINDS.get(type(record), 'a number')}"
    # loc: (index, field, ...); a union adds the name of the branch that failed.
    path = [str(part) for part in error["loc"][1:]]
    field, name, kind = path[0], ".".join(path[:2]), error["type"]
    if kind == "string_too_long":
        return field, f"{name} is over {error.get('ctx', {}).get('max_length')} characters"
    if field == "app_platform":
        if isinstance(error["input"], str):
            return field, f"app_platform is over {MAX_PLATFORM_CHARS} characters"
        return field, "app_platform is neither an integer nor a string"
    if name == "error.code":
        return field, "error.code is not an integer"
    if kind == "missing" or (error["input"] is None and field in ("msgid", "type")):
        return field, f"{name} is missing"
    if field == "msgid":
        return field, "msgid is not a non-empty string"
    if field == "type" and kind != "int_type":
        return field, f"type {error['input']} is not a UMS status type (0-8)"
    if kind in ("greater_than_equal", "less_than_equal"):
        return field, f"{name} {error['input']} is out of range"
    return field, f"{name} {_REASONS.get(kind, error['msg'])}"
