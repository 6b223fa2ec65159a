"""The small typed field checks every UMS message rule is built from.

Each check takes a value and the path of the field it came from (``msg_app[0].platform``,
``option.priority``) and either returns the value, narrowed to its type, or raises
:class:`sender.errors.InvalidMessageError` naming that path. A failure answers UMS's
business code 4004, invalid parameter (业务返回码 / Business return codes), unless the
rule passes a code of its own. A JSON ``null`` given for an optional field counts as
not given, as the field left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from ...errors import InvalidMessageError
from ...values import is_int
from ..protocol import INVALID_PARAMETER


def fail(field: str, reason: str, code: int = INVALID_PARAMETER) -> NoReturn:
    """Raise the InvalidMessageError UMS's answer to this field would be."""
    raise InvalidMessageError(field, reason, code)


def join(path: str, key: str) -> str:
    """The path of ``key`` inside the object at ``path`` (the top level when empty)."""
    return f"{path}.{key}" if path else key


def utf8_len(text: str) -> int:
    """The length of ``text`` in UTF-8 bytes, the unit of UMS's byte limits."""
    return len(text.encode("utf-8"))


def as_object(value: Any, field: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, else fail."""
    if not isinstance(value, Mapping):
        fail(field, "must be an object")
    return value


def as_array(value: Any, field: str, *, min_len: int = 1, max_len: int | None = None) -> list[Any]:
    """``value`` as a JSON array of ``min_len`` to ``max_len`` items, else fail."""
    if not isinstance(value, list | tuple):
        fail(field, "must be an array")
    if len(value) < min_len:
        fail(field, f"must have at least {min_len} item{'s' if min_len > 1 else ''}")
    if max_len is not None and len(value) > max_len:
        fail(field, f"must have at most {max_len} items, got {len(value)}")
    return list(value)


def as_string(
    value: Any,
    field: str,
    *,
    allow_empty: bool = False,
    max_chars: int | None = None,
    max_bytes: int | None = None,
) -> str:
    """``value`` as a string within its character and UTF-8 byte limits, else fail."""
    if not isinstance(value, str):
        fail(field, "must be a string")
    if not value and not allow_empty:
        fail(field, "must not be empty")
    if max_chars is not None and len(value) > max_chars:
        fail(field, f"must be at most {max_chars} characters, got {len(value)}")
    if max_bytes is not None and utf8_len(value) > max_bytes:
        fail(field, f"must be at most {max_bytes} UTF-8 bytes, got {utf8_len(value)}")
    return value


def as_integer(value: Any, field: str, *, choices: Sequence[int] | None = None) -> int:
    """``value`` as a JSON integer (never a bool), one of ``choices`` if given, else fail."""
    if not is_int(value):
        fail(field, "must be an integer")
    if choices is not None and value not in choices:
        fail(field, f"must be one of {', '.join(map(str, choices))}, got {value}")
    return int(value)


def present(obj: Mapping[str, Any], key: str) -> bool:
    """Whether ``key`` is given in ``obj``: there, and not null."""
    return obj.get(key) is not None


def required(obj: Mapping[str, Any], key: str, path: str) -> Any:
    """The value of a required ``key`` of the object at ``path``, else fail."""
    if not present(obj, key):
        fail(join(path, key), "is required")
    return obj[key]


def optional_string(obj: Mapping[str, Any], key: str, path: str, **limits: Any) -> None:
    """Fail unless ``key``, when given, is a string (empty allowed) within ``limits``."""
    if present(obj, key):
        as_string(obj[key], join(path, key), allow_empty=True, **limits)


def choice(obj: Mapping[str, Any], key: str, path: str, choices: Sequence[str]) -> None:
    """Fail unless ``key``, when given, is one of the strings ``choices``."""
    if present(obj, key):
        value = as_string(obj[key], join(path, key))
        if value not in choices:
            fail(join(path, key), f"must be one of {', '.join(choices)}, got {value!r}")


def boolean(obj: Mapping[str, Any], key: str, path: str) -> None:
    """Fail unless ``key``, when given, is true or false."""
    if present(obj, key) and not isinstance(obj[key], bool):
        fail(join(path, key), "must be true or false")
