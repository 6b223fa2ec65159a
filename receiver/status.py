"""The status rule: a target's current status is decided by stage, never by arrival.

A later stage always wins (validation < submission < delivery < engagement <
withdrawal), and within a stage a success beats a failure, so late or repeated
callbacks never move a target backwards.
"""

from __future__ import annotations

from typing import Final

from sender.ums.protocol import STATUS_INFO

RANK_BY_TYPE: Final[dict[int, int]] = {
    int(type_): info.stage * 2 + int(info.ok) for type_, info in STATUS_INFO.items()
}


def rank(type_: int) -> int:
    """Precedence of a callback type when deciding a target's current status."""
    return RANK_BY_TYPE[type_]
