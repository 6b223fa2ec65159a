"""The bounds a callback record must keep to be stored, checked before the database
sees a value. Each is documented (README, OpenAPI); a record past one is quarantined
with a reason that names the field and the bound.

The lengths keep every key well under PostgreSQL's limit on an index row (about 2.7
kB) and every stored text small; UMS's own ids are far shorter (a msgid is about 25
characters, a userid at most 64). ``sent_time`` stops a day before the year 10000, so
that a database in any time zone reads every stored time back.
"""

from __future__ import annotations

import json
from typing import Any, Final

MAX_KEY_CHARS: Final = 256  # msgid, userid, sender_id, channelkey
MAX_PLATFORM_CHARS: Final = 64  # app_platform given as a name
MAX_ERROR_MESSAGE_CHARS: Final = 4096
MAX_PARAMS_BYTES: Final = 8192  # params as JSON text, UTF-8
MAX_DEPTH: Final = 16  # nesting of any value in a record (params, unknown fields)
MAX_RECORDS: Final = 1000  # per batch; UMS sends at most 100
MAX_SENT_TIME: Final = 253_402_128_000_000  # 9999-12-30T00:00:00Z in milliseconds

# Worst-case JSON length of a scalar (a float's repr, \uXXXX escapes for a string).
_SCALAR_BYTES: Final = 32
_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def shape_problem(record: dict[str, Any]) -> str | None:
    """Whether a record's values nest deeper than :data:`MAX_DEPTH`, or its params are
    larger than :data:`MAX_PARAMS_BYTES` as JSON; the reason, or None. Iterative: a
    value nested a thousand levels deep is measured without recursion. A hot path: a
    record of scalars and flat objects (every UMS record) costs a type check a value."""
    for name, value in record.items():
        kind = type(value)
        if kind in _SCALARS:
            continue
        if kind is dict:
            size = 2
            for key, inner in value.items():
                if type(inner) not in _SCALARS:
                    break
                size += len(key) + (len(inner) if type(inner) is str else _SCALAR_BYTES)
            else:  # flat: one level, and params small enough to need no measuring
                large = name == "params" and 6 * size > MAX_PARAMS_BYTES
                if large and _json_bytes(value) > MAX_PARAMS_BYTES:
                    return f"params is over {MAX_PARAMS_BYTES} bytes as JSON"
                continue
        if _deeper_than(value, MAX_DEPTH):
            return f"{name} is nested deeper than {MAX_DEPTH} levels"
        if name == "params" and _json_bytes(value) > MAX_PARAMS_BYTES:
            return f"params is over {MAX_PARAMS_BYTES} bytes as JSON"
    return None


def _deeper_than(value: dict[str, Any] | list[Any], limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if type(child) not in _SCALARS:
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _json_bytes(params: dict[str, Any]) -> int:
    """The size of ``params`` as JSON text: measured only when a quick upper bound is
    over the limit (params are small, and measuring costs a dump)."""
    bound = 2
    stack: list[Any] = [params]
    while stack and bound <= MAX_PARAMS_BYTES:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            bound += (6 * len(key) + 3 if isinstance(key, str) else 0) + 2
            if isinstance(child, dict | list):
                stack.append(child)
                bound += 2
            elif isinstance(child, str):
                bound += 6 * len(child) + 2
            else:
                bound += _SCALAR_BYTES
    if bound <= MAX_PARAMS_BYTES:
        return bound
    return len(json.dumps(params, ensure_ascii=False).encode("utf-8", "surrogatepass"))
