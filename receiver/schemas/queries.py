"""The read API's query parameters, one model per list, and their parsing.

A bad parameter answers 400 with a message that starts with the parameter's name; an
unknown parameter, or a single-valued one given twice, too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from sender.ums.protocol import SENDER_BY_CHANNEL, STATUSES, is_channel_name

from .common import Status, Time

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# A time, then an offset whose "+" a query string decoded as a space.
_UNENCODED_OFFSET = re.compile(r"(\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")
_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)
Query = TypeVar("Query", bound="PageQuery")


class QueryError(ValueError):
    """A query parameter that cannot be used; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def _limit(raw: Any) -> Any:
    # isascii: str.isdigit() also takes digits such as "²" that int() refuses.
    digits = isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 6
    if digits and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    if isinstance(raw, int) and 1 <= raw <= MAX_LIMIT:
        return raw
    raise PydanticCustomError(
        "limit",
        "must be an integer from 1 to {most}, got {raw}",
        {"most": MAX_LIMIT, "raw": repr(raw)},
    )


def _time(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    # An offset written unencoded in a URL ("+08:00") arrives as " 08:00".
    text = _UNENCODED_OFFSET.sub(r"\1+\2", raw)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise PydanticCustomError(
            "time", "not an ISO 8601 time: {raw}", {"raw": repr(raw)}
        ) from None
    # A time without an offset is taken as UTC; one beyond what UTC can write (year 1
    # with a positive offset) is as early, or late, as any time can be.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return _EARLIEST if value.year == 1 else _LATEST


def _format(raw: Any) -> Any:
    if raw in ("csv", "ndjson"):
        return raw
    raise PydanticCustomError("format", "must be csv or ndjson, got {raw}", {"raw": repr(raw)})


def _text(raw: Any) -> Any:
    if isinstance(raw, str) and "\x00" in raw:
        raise PydanticCustomError("nul", "contains a NUL character, which no stored value has")
    return raw


Limit = Annotated[int, BeforeValidator(_limit)]
QueryTime = Annotated[Time, BeforeValidator(_time)]
Text = Annotated[str, BeforeValidator(_text)]
ExportFormat = Annotated[Literal["csv", "ndjson"], BeforeValidator(_format)]
_FORMAT = (
    "Export every item that matches the other parameters, unpaged and streamed, instead "
    "of one JSON page: csv (UTF-8 with a byte order mark, a header row, nested values "
    "as dotted columns) or ndjson (one item a line). Not with limit or cursor."
)


class PageQuery(BaseModel):
    """Paging: ``limit`` and the ``cursor`` a previous page gave."""

    model_config = ConfigDict(extra="forbid")
    # Query parameters named ``<prefix><key>`` gather in one dict field.
    exploded: ClassVar[dict[str, str]] = {}

    limit: Limit = Field(
        DEFAULT_LIMIT,
        description=f"Page size, 1 to {MAX_LIMIT}.",
        json_schema_extra={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    )
    cursor: Text | None = Field(
        None, description="A next_cursor from the previous page of the same list."
    )


class TimelineQuery(PageQuery):
    """The parameters of ``GET /api/messages/<msgid>/timeline``."""

    format: ExportFormat | None = Field(None, description=_FORMAT)


def _channel(raw: Any) -> Any:
    if isinstance(raw, str) and not is_channel_name(raw):
        known = ", ".join(sorted(SENDER_BY_CHANNEL))
        raise PydanticCustomError(
            "channel",
            "unknown channel {raw}; one of {known}, or unknown:<sender>",
            {"raw": repr(raw), "known": known},
        )
    return raw


def _error_code(raw: Any) -> Any:
    digits = raw.removeprefix("-") if isinstance(raw, str) else ""
    if digits.isascii() and digits.isdigit() and len(digits) <= 18:
        return int(raw)
    raise PydanticCustomError("error_code", "must be an integer, got {raw}", {"raw": repr(raw)})


def _flag(raw: Any) -> Any:
    # Only the two words: pydantic's bool would also take 1, on, yes, y...
    if raw in ("true", "false"):
        return raw == "true"
    if isinstance(raw, bool):
        return raw
    raise PydanticCustomError("flag", "must be true or false, got {raw}", {"raw": repr(raw)})


class TargetQuery(PageQuery):
    """The parameters of ``GET /api/messages/<msgid>/targets``."""

    status: Status | None = Field(
        None, description="Only targets whose current status is this one."
    )
    has: list[Status] = Field(
        default_factory=list,
        description="Only targets that reached this status at its stage (repeatable: all "
        "must hold), e.g. has=delivered. A stage keeps its success over a failure.",
    )
    lacks: list[Status] = Field(
        default_factory=list,
        description="Only targets that never reached this status (repeatable: none may "
        "hold), e.g. has=delivered&lacks=clicked.",
    )
    channel: Annotated[str, BeforeValidator(_channel)] | None = Field(
        None, description="Only targets on this channel (the targets' channel names)."
    )
    error_code: Annotated[int, BeforeValidator(_error_code)] | None = Field(
        None,
        description="Only targets that failed at some stage with this error code.",
        json_schema_extra={"type": "integer"},
    )
    stale: Annotated[bool, BeforeValidator(_flag)] | None = Field(
        None,
        description="true: only stale targets (current status target_valid or submitted, "
        "nothing arrived for them in the last STALE_AFTER minutes); false: only the others.",
        json_schema_extra={"type": "string", "enum": ["true", "false"]},
    )
    format: ExportFormat | None = Field(None, description=_FORMAT)


class RecipientQuery(PageQuery):
    """The parameters of ``GET /api/recipients/<recipient>/events``."""


class MessageQuery(PageQuery):
    """The parameters of ``GET /api/messages``."""

    exploded: ClassVar[dict[str, str]] = {"param.": "params"}

    sendno: Text | None = Field(None, description="Only messages with this sendno.")
    send_id: Text | None = Field(None, description="Only the messages (parts) of this send.")
    status: Status | None = Field(
        None, description="Only messages with a target in this current status."
    )
    since: QueryTime | None = Field(
        None,
        description="Only messages this service knew of at or after this time (created_at, "
        "inclusive). ISO 8601; without an offset UTC is assumed.",
    )
    until: QueryTime | None = Field(
        None,
        description="Only messages this service knew of before this time (created_at, "
        "exclusive). ISO 8601; without an offset UTC is assumed.",
    )
    params: dict[str, Text] = Field(
        default_factory=dict,
        description="Filters on the message's params: each query parameter "
        "`param.<key>=<value>` keeps only messages whose params hold `<key>` with that "
        "value (compared as text), e.g. `param.order_id=123`. Several are combined with AND.",
    )


def parse_query(
    model: type[Query], names: Iterable[str], getlist: Callable[[str], list[str]]
) -> Query:
    """The query of ``model`` from a query string (its parameter ``names`` and each one's
    values); raises QueryError naming the first parameter that cannot be used."""
    values: dict[str, Any] = {}
    for name in names:
        given = getlist(name)
        prefix = next((p for p in model.exploded if name.startswith(p) and name != p), None)
        if prefix is not None:
            field = values.setdefault(model.exploded[prefix], {})
            key, value = name.removeprefix(prefix), given[-1]
            if "\x00" in key:
                raise QueryError(name, "contains a NUL character, which no stored value has")
            field[key] = value
            continue
        if name not in model.model_fields or name in model.exploded.values():
            fields = [f for f in model.model_fields if f not in model.exploded.values()]
            known = ", ".join([*fields, *(f"{p}<key>" for p in model.exploded)])
            raise QueryError(name, f"unknown parameter; this list takes {known}")
        if _repeatable(model, name):
            values[name] = given
            continue
        if len(given) > 1:
            raise QueryError(name, f"given {len(given)} times; give it once")
        values[name] = given[0]
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(part) for part in error["loc"]]
        name = loc[0]
        if name in model.exploded.values() and len(loc) > 1:
            name = next(p for p, f in model.exploded.items() if f == name) + loc[1]
        message = error["msg"]
        if error["type"] == "literal_error":
            message = f"unknown status {error['input']!r}; one of {', '.join(STATUSES)}"
        raise QueryError(name, message) from None


def _repeatable(model: type[PageQuery], name: str) -> bool:
    """Whether a parameter takes several values (a list field)."""
    return get_origin(model.model_fields[name].annotation) is list
