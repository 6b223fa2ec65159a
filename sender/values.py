"""Small checks and renderings every provider module shares."""

from __future__ import annotations

from typing import Any, TypeGuard
from urllib.parse import urlsplit

EXCERPT_CHARS = 200


def is_int(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is a JSON integer: an int, and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_http_url(url: str) -> bool:
    """Whether ``url`` is an absolute http(s) URL with a host."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def excerpt(content: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """A one-line quoted excerpt of a body for an error message: white space folded,
    cut at ``limit`` characters."""
    text = content.decode("utf-8", errors="replace") if isinstance(content, bytes) else content
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return repr(text)
