"""Kept summaries: a big message's figures are computed once per change of it, not at
every read.

A message's figures (its events by status with their first and last times, its targets
by current status, the funnel, the top errors, the stage timings) are grouped reads of
every target row of the message: for a 100,000-recipient broadcast, about two seconds
in all. The intake counts, per message, the batches that stored new events of it
(``message_activity``, in slots: concurrent batches of one broadcast seldom wait on one
row). A summary reads that count before any figure, so the figures it then computes
hold at least what the count covers, and keeps them with it. A later read that finds
the same count takes the kept figures: nothing was stored for the message since. A
batch committed while figures were being computed moved the count: the next read
computes them again. Nothing kept is ever older than what it claims to hold.

Only messages of at least :data:`KEEP_FROM_TARGETS` targets are kept: a small
message's figures cost less to compute than to keep. The stale count depends on the
time of the read: what is kept is the waiting targets counted by the time of their
last news, which gives it at any time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .db import write_transaction
from .schemas.funnel import ErrorCount, Funnel, Timing
from .store import ACTIVITY, KEPT

log = logging.getLogger(__name__)

KEEP_FROM_TARGETS = 1000


class Figures(BaseModel):
    """What a summary reads from a message's events and targets (statuses by name)."""

    counts: dict[str, int]
    by_status: dict[str, int]
    first_event_at: datetime | None
    last_event_at: datetime | None
    funnel: Funnel
    # The waiting targets by the time of their last news: the stale count at any time.
    waiting: list[tuple[datetime, int]]
    # A detailed summary's, else None: the top errors, and the stage timings counted
    # from ``since`` (the message's send, or its first event).
    errors: list[ErrorCount] | None = None
    timing: Timing | None = None
    since: datetime | None = None

    @property
    def targets(self) -> int:
        return sum(self.by_status.values())


_ACTIVITY = (
    select(ACTIVITY.c.msgid, func.sum(ACTIVITY.c.batches))
    .where(ACTIVITY.c.msgid.in_(bindparam("msgids", expanding=True)))
    .group_by(ACTIVITY.c.msgid)
)
_KEPT = select(KEPT.c.msgid, KEPT.c.activity, KEPT.c.figures).where(
    KEPT.c.msgid.in_(bindparam("msgids", expanding=True))
)


def activity(session: Session, msgids: Sequence[str]) -> dict[str, int]:
    """How many batches stored new events of each of these messages (0: none)."""
    found = dict.fromkeys(msgids, 0)
    if msgids:
        found.update(
            (msgid, int(n)) for msgid, n in session.execute(_ACTIVITY, {"msgids": list(msgids)})
        )
    return found


def kept(session: Session, activity: Mapping[str, int]) -> dict[str, Figures]:
    """The kept figures that are current: kept with the activity read now."""
    if not activity:
        return {}
    found = {}
    for msgid, counted, figures in session.execute(_KEPT, {"msgids": list(activity)}):
        if counted == activity[msgid]:
            try:
                found[msgid] = Figures.model_validate_json(figures)
            except ValidationError:  # kept by another release: computed again
                continue
    return found


def keep(bind: Any, figures: Mapping[str, tuple[int, Figures]]) -> None:
    """Keep these messages' figures, each with the activity read before they were
    computed. A failure to keep them is logged and costs the next read a computation,
    nothing more: the summary was already made."""
    if not figures:
        return
    engine: Engine = bind if isinstance(bind, Engine) else bind.engine
    now = datetime.now(UTC)
    rows = [
        {
            "msgid": msgid,
            "activity": counted,
            "figures": found.model_dump_json(),
            "computed_at": now,
        }
        for msgid, (counted, found) in sorted(figures.items())
    ]
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    upsert = dialect.insert(KEPT)
    statement = upsert.on_conflict_do_update(
        index_elements=[KEPT.c.msgid],
        set_={name: upsert.excluded[name] for name in ("activity", "figures", "computed_at")},
    )
    try:
        with write_transaction(engine) as session:
            session.execute(statement, rows)
    except SQLAlchemyError as error:
        log.warning("summaries not kept (%s): the next read computes them again", error)
