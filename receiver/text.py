"""Text for a terminal: values that came from outside, made safe to print."""

from __future__ import annotations

from typing import Final

_CONTROL: Final = {
    code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code != 0x0A
} | {0x09: "\\t", 0x0D: "\\r", 0x1B: "\\x1b"}
_FORMATTING: Final = {
    code: f"\\u{code:04x}"
    for code in (
        0x061C,
        0x200E,
        0x200F,
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` made safe for a terminal: control characters (escape sequences that
    could move the cursor, retitle the window or hide text) and bidirectional overrides
    written as escapes; newlines kept only when ``newlines``. For every value that came
    from outside (callbacks, bodies) before it is printed as text."""
    table = dict(_CONTROL) | _FORMATTING
    if not newlines:
        table[0x0A] = "\\n"
    return text.translate(table)
