"""Reading a callback body as JSON, however deeply a record in it nests.

Python's parser gives up past about a thousand levels, and would take the whole batch
down with the one record that nests so deep. Then the body's top-level elements are
cut apart (a C-speed scan of the tokens that matter) and read one by one: the records
that read are checked as usual, and each one that does not is kept in quarantine as
the text that arrived.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .records import UnreadableRecord

# The tokens that decide where a top-level element ends: strings (skipped whole, as
# they may hold any bracket or comma), brackets, and commas.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def read_body(body: bytes) -> Any:
    """The body's JSON value; raises ValueError when it is not JSON."""
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        pass
    text = body.decode("utf-8")  # json.loads read it: it is text
    stripped = text.strip()
    if stripped.startswith("{"):
        return [_unreadable(stripped)]
    if not stripped.startswith("["):
        raise ValueError("nested too deeply")
    return [_element(part) for part in _parts(stripped)]


def _element(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        return _unreadable(text) if text.startswith("{") else UnreadableRecord(text)


def _unreadable(record: str) -> UnreadableRecord:
    """A record too deep to read, with the name of its first member that is."""
    for member in _parts(record):
        key = _TOKENS.match(member)
        value = member[key.end() :].lstrip().removeprefix(":") if key else ""
        try:
            json.loads(value)
        except RecursionError:
            name = json.loads(key.group()) if key else ""
            return UnreadableRecord(record, field=name if isinstance(name, str) else "")
        except ValueError:
            continue
    return UnreadableRecord(record)


def _parts(text: str) -> list[str]:
    """The texts of the elements of the JSON array, or the members of the JSON object,
    ``text`` (valid JSON: Python's parser found nothing wrong before it ran out of
    depth)."""
    elements: list[str] = []
    depth, start = 0, 1
    for token in _TOKENS.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:  # the array's own end
                last = text[start : token.start()].strip()
                if last:
                    elements.append(last)
        elif char == "," and depth == 1:
            elements.append(text[start : token.start()].strip())
            start = token.end()
    return elements


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
