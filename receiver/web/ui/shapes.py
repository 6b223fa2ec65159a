"""What the templates draw: a message's funnel (ok, failed, pending per stage), the
geometry of its bars, and the colour of a status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAGES = ("validation", "submission", "delivery", "engagement", "withdrawal")
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
FAILED = frozenset({"target_invalid", "submit_failed", "delivery_failed", "withdraw_failed"})


def funnel(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The summary's funnel: ``{"total", "stages": {stage: {"ok", "failed", "pending"}}}``,
    every stage present (a channel's funnel, given as ``{"funnel": channel}``, too)."""
    given = summary.get("funnel") or {}
    return {"total": int(given.get("total") or 0), "stages": _complete(given.get("stages") or {})}


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
