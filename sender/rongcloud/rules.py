"""The rules of a publish_template.json body, checked before anything is sent; the
split of a send into requests; the rendering of placeholders. Pure functions, no I/O.

A template private message (发送单聊模板消息, Send private template message) carries
one ``content`` with placeholders such as ``{name}`` and, per recipient, a map of
values (``{"{name}": "Tom"}``) and a push text; RongCloud renders each recipient's copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import InvalidMessageError
from ..values import is_int
from .protocol import (
    BINARY_FLAGS,
    BOOL_FLAGS,
    BUILTIN_OBJECT_NAMES,
    FIELDS,
    MAX_CONTENT_BYTES,
    MAX_OBJECT_NAME_CHARS,
    MAX_RECIPIENTS,
    MAX_USER_ID_CHARS,
    PARAMETER_ERROR,
    PER_RECIPIENT_FIELDS,
    PROVIDER,
    REQUIRED_FIELDS,
    TEMPLATE_FIELDS,
    TOO_LONG,
)

__all__ = [
    "BUILTIN_OBJECT_NAMES",
    "MAX_CONTENT_BYTES",
    "MAX_OBJECT_NAME_CHARS",
    "MAX_RECIPIENTS",
    "MAX_USER_ID_CHARS",
    "placeholders",
    "preview_template",
    "render",
    "split_template",
    "validate_template",
]

# A placeholder: braces around a name with no space, brace, quote, backslash, colon or
# comma, so that JSON's own braces ({"content": ...}) are never taken for one.
_PLACEHOLDER = re.compile(r"\{[^\s{}\"'\\:,]+\}")


def _invalid(field: str, reason: str, code: int = PARAMETER_ERROR) -> InvalidMessageError:
    """A broken rule of publish_template.json: the field, why, and RongCloud's code (or,
    for an unfilled placeholder, 1002 where RongCloud would not refuse)."""
    return InvalidMessageError(field, reason, code, provider=PROVIDER)


def placeholders(text: str) -> set[str]:
    """The placeholders (``{name}``) a text uses."""
    return set(_PLACEHOLDER.findall(text))


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by its value; one pass, so a value that
    itself looks like a placeholder is left as it is."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(0), m.group(0)), text)


def validate_template(message: Any, *, max_recipients: int | None = MAX_RECIPIENTS) -> None:
    """Raise InvalidMessageError unless ``message`` is a body RongCloud takes and every
    recipient gets fully rendered content; ``max_recipients=None`` checks a whole send
    before it is split."""
    if not isinstance(message, Mapping):
        raise _invalid("message", "must be a JSON object")
    for key in message:
        if key not in FIELDS:
            raise _invalid(str(key), "is not a field of publish_template.json")
    for key in REQUIRED_FIELDS:
        if key not in message:
            raise _invalid(key, "is required")
    _check_user_id(message["fromUserId"], "fromUserId")
    recipients = _check_recipients(message["toUserId"], max_recipients)
    _check_object_name(message["objectName"])
    content = message["content"]
    if not isinstance(content, str) or not content:
        raise _invalid("content", "must be a non-empty string (the message JSON)")
    _check_size(content, "content")
    values = _per_recipient(message, "values", recipients)
    per_recipient = {
        name: _per_recipient(message, name, recipients)
        for name in PER_RECIPIENT_FIELDS
        if name in message
    }
    _check_options(message)
    used_in_content = placeholders(content)
    for i, user in enumerate(recipients):
        own = values[i]
        needed = {(p, "content") for p in used_in_content}
        for name in TEMPLATE_FIELDS:
            if name in per_recipient:
                needed |= {(p, f"{name}[{i}]") for p in placeholders(per_recipient[name][i])}
        missing = sorted((p, where) for p, where in needed if p not in own)
        if missing:
            placeholder, where = missing[0]
            raise _invalid(
                f"values[{i}]",
                f"no value for {placeholder} (used in {where}): toUserId {user!r} would "
                f"see the text {placeholder} itself",
            )
        _check_rendered(render(content, own), i, user)


def split_template(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The requests of a send: at most 1000 recipients each, every per-recipient array
    cut along with ``toUserId``; other fields repeated in each."""
    recipients = list(message["toUserId"])
    parts = []
    for start in range(0, len(recipients), MAX_RECIPIENTS):
        end = start + MAX_RECIPIENTS
        part = dict(message)
        for name in ("toUserId", "values", *PER_RECIPIENT_FIELDS):
            if name in message:
                part[name] = list(message[name][start:end])
        parts.append(part)
    return parts


def preview_template(message: Any) -> dict[str, Any]:
    """What a send would do, checked but not sent: its requests and, per recipient, the
    content, push text and push data as RongCloud would render them."""
    validate_template(message, max_recipients=None)
    parts = split_template(message)
    rendered = []
    for i, user in enumerate(message["toUserId"]):
        own = message["values"][i]
        entry: dict[str, Any] = {
            "toUserId": user,
            "content": render(message["content"], own),
            "pushContent": render(message["pushContent"][i], own),
        }
        if "pushData" in message:
            entry["pushData"] = render(message["pushData"][i], own)
        rendered.append(entry)
    return {
        "dry_run": True,
        "recipients": len(message["toUserId"]),
        "requests": [{"part": n, "recipients": len(p["toUserId"])} for n, p in enumerate(parts)],
        "rendered": rendered,
    }


def _check_user_id(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise _invalid(field, "must be a non-empty string")
    if len(value) > MAX_USER_ID_CHARS:
        raise _invalid(field, f"is over {MAX_USER_ID_CHARS} characters", TOO_LONG)


def _check_recipients(value: Any, max_recipients: int | None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _invalid("toUserId", "must be a non-empty array of user ids")
    if max_recipients is not None and len(value) > max_recipients:
        raise _invalid(
            "toUserId", f"has {len(value)} recipients; at most {max_recipients} per request"
        )
    seen: dict[str, int] = {}
    for i, user in enumerate(value):
        if not isinstance(user, str) or not user:
            raise _invalid(f"toUserId[{i}]", "must be a non-empty string")
        if user in seen:
            # Each recipient is tracked once per message: a second entry could not be told apart.
            raise _invalid(f"toUserId[{i}]", f"{user!r} is already toUserId[{seen[user]}]")
        seen[user] = i
    return value


def _check_object_name(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise _invalid("objectName", "must be a non-empty string such as RC:TxtMsg")
    if len(value) > MAX_OBJECT_NAME_CHARS:
        raise _invalid(
            "objectName", f"is {len(value)} characters; at most {MAX_OBJECT_NAME_CHARS}", TOO_LONG
        )
    if value.startswith("RC:") and value not in BUILTIN_OBJECT_NAMES:
        raise _invalid(
            "objectName",
            f"{value!r} is no RongCloud built-in type, and a custom type may not start with 'RC:'",
        )


def _check_options(message: Mapping[str, Any]) -> None:
    for name in BINARY_FLAGS:
        if name in message and (not is_int(message[name]) or message[name] not in (0, 1)):
            raise _invalid(name, "must be 0 or 1")
    for name in BOOL_FLAGS:
        if name in message and not isinstance(message[name], bool):
            raise _invalid(name, "must be true or false")
    if "busChannel" in message and not isinstance(message["busChannel"], str):
        raise _invalid("busChannel", "must be a string")
    if "msgRandom" in message and not is_int(message["msgRandom"]):
        raise _invalid("msgRandom", "must be an integer")


def _check_size(text: str, field: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise _invalid(field, f"is {size} bytes; at most {MAX_CONTENT_BYTES} (128 KB)", TOO_LONG)


def _check_rendered(rendered: str, i: int, user: str) -> None:
    """One recipient's content as RongCloud renders it: within the size limit, and still
    the JSON object a client parses."""
    _check_size(rendered, f"content rendered for toUserId[{i}]")
    try:
        parsed = json.loads(rendered)
    except ValueError as exc:
        parsed, problem = None, f"{exc}"
    else:
        problem = "not an object"
    if not isinstance(parsed, dict):
        raise _invalid(
            "content",
            f"rendered for toUserId[{i}] ({user!r}) it is not a JSON object ({problem}); "
            f"a value with a quote or backslash needs JSON escaping",
        )


def _per_recipient(message: Mapping[str, Any], name: str, recipients: list[str]) -> list[Any]:
    """A field with one entry per recipient: its list, after checking each entry."""
    value = message[name]
    if not isinstance(value, list):
        raise _invalid(name, "must be an array, one entry per toUserId")
    if len(value) != len(recipients):
        raise _invalid(
            name,
            f"has {len(value)} entries for {len(recipients)} recipients: one per toUserId, "
            f"in the same order",
        )
    for i, entry in enumerate(value):
        if name == "values":
            _check_values(entry, f"values[{i}]")
        elif not isinstance(entry, str):
            raise _invalid(f"{name}[{i}]", "must be a string")
    return value


def _check_values(entry: Any, field: str) -> None:
    if not isinstance(entry, dict):
        raise _invalid(field, 'must be an object such as {"{name}": "Tom"}')
    for key, value in entry.items():
        if not _PLACEHOLDER.fullmatch(key):
            raise _invalid(
                field, f"key {key!r} is not a placeholder: write it as used, e.g. '{{{key}}}'"
            )
        if not isinstance(value, str):
            raise _invalid(f"{field}[{key!r}]", "must be a string")
