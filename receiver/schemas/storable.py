"""What the database cannot hold, found before it sees a value: a NUL character (no
PostgreSQL text or JSON value can contain one), a lone UTF-16 surrogate (JSON lets
``"\\ud800"`` through; it is not Unicode, so it has no UTF-8 form), or a number beyond a
double (``1e400``, which Python reads as infinity). Callback intake quarantines a record
that holds one; a send through this service is refused before it leaves."""

from __future__ import annotations

import math
from typing import Any, NamedTuple


class Unstorable(NamedTuple):
    """The first unstorable value: where it is (``a.b[2]``; empty for the top level),
    why, and whether it is a field name rather than a value."""

    path: str
    problem: str
    in_name: bool = False

    def describe(self, whole: str) -> str:
        """One sentence naming the place (``whole`` names the top level)."""
        if self.in_name:
            return f"a field name in {self.path or whole} {self.problem}"
        return f"{self.path or whole} {self.problem}"


def unstorable(value: Any) -> Unstorable | None:
    """The first value (depth first) the database cannot hold, or None. Iterative, so
    that any nesting is safe."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                return Unstorable(path, problem)
        elif isinstance(item, float) and not math.isfinite(item):
            return Unstorable(path, "contains a number too large to store")
        elif isinstance(item, dict | list):
            children = []
            for key, child in item.items() if isinstance(item, dict) else enumerate(item):
                if isinstance(key, str):
                    if problem := text_problem(key):
                        return Unstorable(path, problem, in_name=True)
                    children.append((f"{path}.{key}".removeprefix("."), child))
                else:
                    children.append((f"{path}[{key}]", child))
            stack.extend(reversed(children))  # keep depth-first, left-to-right order
    return None


def text_problem(text: str) -> str | None:
    """Why a text cannot be stored, or None."""
    if "\x00" in text:
        return "contains a NUL character, which the database cannot store"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone UTF-16 surrogate, not valid Unicode"
    return None
