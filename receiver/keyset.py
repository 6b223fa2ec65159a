"""Keyset pages: a list read in pages by the position of its last row, and opaque
cursors that carry that position (base64 of JSON, tagged with the list they belong
to); a cursor this service did not hand out is refused with :class:`CursorError`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, literal, tuple_

from sender.values import is_int

Item = TypeVar("Item")


class CursorError(ValueError):
    """A cursor that this service did not hand out (or for another list)."""


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list and the cursor of the next one (None on the last page)."""

    items: list[Item]
    next_cursor: str | None


def past(
    key: Sequence[Any], values: Sequence[Any], *, descending: bool = False
) -> ColumnElement[bool]:
    """Rows past a cursor position in the order of ``key``; each value is bound with
    its column's type, so times compare as the column stores them."""
    bound = (literal(value, type_=column.type) for column, value in zip(key, values, strict=True))
    position = tuple_(*bound)
    return tuple_(*key) < position if descending else tuple_(*key) > position


def page(items: list[Item], rows: Sequence[Any], limit: int, key: Any) -> Page[Item]:
    # One row more than asked for was read: its presence says a next page exists.
    return Page(items, key(rows[limit - 1]) if len(rows) > limit else None)


def encode(kind: str, values: list[Any]) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kind: str, size: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise CursorError("not a cursor of this service") from None
    if not isinstance(values, list) or len(values) != size + 1 or values[0] != kind:
        raise CursorError("a cursor of another list")
    return values[1:]


def cursor_datetime(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(cursor_string(value))
    except ValueError:
        raise CursorError("a damaged cursor") from None
    if parsed.tzinfo is None:
        raise CursorError("a damaged cursor")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # beyond what UTC can write: no cursor of ours
        raise CursorError("a damaged cursor") from None


def cursor_string(value: Any) -> str:
    # No stored text holds NUL (PostgreSQL's text cannot) or a lone surrogate (not
    # Unicode): no cursor of ours does.
    if not isinstance(value, str) or "\x00" in value:
        raise CursorError("a damaged cursor")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CursorError("a damaged cursor") from None
    return value


def cursor_int(value: Any) -> int:
    # The integers in cursors (type, sender) are SMALLINT columns.
    if not is_int(value) or not -(2**15) <= value < 2**15:
        raise CursorError("a damaged cursor")
    return value
