"""What the templates draw: a message's funnel (ok, failed, pending per stage), and the
geometry of its bars.

A summary that carries ``funnel`` is drawn as it is; an older one gets a funnel made
from its targets' current statuses (a target counts as ok at every stage before the
one it stands at).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAGES = ("validation", "submission", "delivery", "engagement", "withdrawal")
# The current statuses that are past each stage, and that failed at it.
_OK_AT = {
    "validation": (
        "target_valid",
        "submitted",
        "submit_failed",
        "delivered",
        "delivery_failed",
        "clicked",
        "withdrawn",
        "withdraw_failed",
    ),
    "submission": (
        "submitted",
        "delivered",
        "delivery_failed",
        "clicked",
        "withdrawn",
        "withdraw_failed",
    ),
    "delivery": ("delivered", "clicked", "withdrawn", "withdraw_failed"),
    "engagement": ("clicked",),
    "withdrawal": ("withdrawn",),
}
_FAILED_AT = {
    "validation": ("target_invalid",),
    "submission": ("submit_failed",),
    "delivery": ("delivery_failed",),
    "engagement": (),
    "withdrawal": ("withdraw_failed",),
}
STATUS_STAGE = {
    "target_valid": "validation",
    "target_invalid": "validation",
    "submitted": "submission",
    "submit_failed": "submission",
    "delivered": "delivery",
    "delivery_failed": "delivery",
    "clicked": "engagement",
    "withdrawn": "withdrawal",
    "withdraw_failed": "withdrawal",
}
FAILED = frozenset(s for names in _FAILED_AT.values() for s in names)


def funnel(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's funnel: ``{"total", "stages": {stage: {"ok", "failed", "pending"}}}``."""
    given = summary.get("funnel")
    if isinstance(given, Mapping) and isinstance(given.get("stages"), Mapping):
        return {"total": given.get("total", 0), "stages": _complete(given["stages"])}
    targets = summary.get("targets") or {}
    by_status: Mapping[str, int] = targets.get("by_status") or {}
    total = int(targets.get("total") or 0)
    stages = {}
    for stage in STAGES:
        ok = sum(by_status.get(s, 0) for s in _OK_AT[stage])
        failed = sum(by_status.get(s, 0) for s in _FAILED_AT[stage])
        if stage == "withdrawal":  # only withdrawn messages have a withdrawal stage
            pending = 0
        else:
            earlier = sum(
                by_status.get(s, 0)
                for before in STAGES[: STAGES.index(stage)]
                for s in _FAILED_AT[before]
            )
            pending = max(total - ok - failed - earlier, 0)
        stages[stage] = {"ok": ok, "failed": failed, "pending": pending}
    return {"total": total, "stages": stages}


def _complete(stages: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Every stage with its three counts, whatever the summary left out."""
    result = {}
    for stage in STAGES:
        counts = stages.get(stage) or {}
        result[stage] = {k: int(counts.get(k) or 0) for k in ("ok", "failed", "pending")}
    return result


def bar(counts: Mapping[str, int], total: int, width: float) -> list[tuple[str, float, float]]:
    """The segments (kind, x, width) of one stage's bar ``width`` wide, scaled to ``total``."""
    if total <= 0:
        return []
    segments = []
    x = 0.0
    for kind in ("ok", "failed", "pending"):
        share = width * counts.get(kind, 0) / total
        if share > 0:
            segments.append((kind, round(x, 2), round(share, 2)))
            x += share
    return segments


def tone(status: str | None) -> str:
    """The colour class of a status: ok, failed or pending."""
    if status is None:
        return "pending"
    if status in FAILED:
        return "failed"
    return "ok" if status in ("delivered", "clicked", "withdrawn") else "pending"


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` as a rounded percentage ("–" when there is no whole)."""
    return f"{100 * part / whole:.0f}%" if whole else "–"
