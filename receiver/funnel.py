"""A message's funnel, top errors and stage timings, from its target rows alone (each
keeps every stage's outcome), so that a 100,000-target message is summed up by a few
grouped reads, never by reading its events."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement

from sender.ums.protocol import SYSTEM_SENDER, channel_name

from .schemas.funnel import (
    ChannelFunnel,
    ErrorCount,
    Funnel,
    StageCounts,
    StageFunnel,
    StageTiming,
    Timing,
)
from .store import NO_SENDER, STAGES, TARGET, StageColumns, of_message

MAX_ERRORS = 10
# The stages a target passes in order; withdrawal stands apart (it may come at any time).
_PROGRESS = STAGES[:4]


def shown_target(days: Sequence[int] | BindParameter[Any] = ()) -> ColumnElement[bool]:
    """Hides a recipient's UMS-level row (sender 0, or none) once the recipient has a
    row on a real channel (``days``: the messages' days, when known, so that PostgreSQL
    plans that lookup on their partitions alone).

    UMS makes validation records itself, before any channel takes the message; the
    recipient's submission and delivery records then come from each channel. Kept
    apart, one recipient would count as two targets, one stuck at ``target_valid``.
    The channel rows are always past validation, so nothing is lost by hiding it.
    """
    system = TARGET.c.sender.in_((SYSTEM_SENDER, NO_SENDER))
    channel = TARGET.alias("channel_target")
    day = _NotIndexed(channel.c.day)
    on_a_channel = exists().where(
        channel.c.msgid == TARGET.c.msgid,
        day == TARGET.c.day,  # the same message's: on PostgreSQL, one partition
        among_days(day, days),
        channel.c.recipient == TARGET.c.recipient,
        channel.c.sender.not_in((SYSTEM_SENDER, NO_SENDER)),
    )
    return or_(~system, ~on_a_channel)


def among_days(column: Any, days: Sequence[int] | BindParameter[Any]) -> ColumnElement[bool]:
    """``column`` is one of ``days`` (an expanding parameter, or the days themselves;
    none known: any day)."""
    if isinstance(days, BindParameter):
        return column.in_(days)  # type: ignore[no-any-return]
    return column.in_(sorted(set(days))) if days else true()


class _NotIndexed(FunctionElement[int]):
    """A column that SQLite must not look up by index (``+column``): the recipient's
    lookup above then takes the primary key (msgid, recipient, ...), one row, rather
    than the status index (msgid, day, ...), which covers the query but is every row of
    the message (SQLite's planner prefers it without statistics: quadratic). Other
    databases see the column itself."""

    name = "not_indexed"
    type = Integer()
    inherit_cache = True  # a statement using it is compiled once, like any other


@compiles(_NotIndexed)
def _plain(element: _NotIndexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_NotIndexed, "sqlite")
def _unary_plus(element: _NotIndexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def _ok(stage: StageColumns) -> ColumnElement[bool]:
    """A target counts as past a stage when it reached its success or a later one's (a
    target on a channel was valid: UMS hands only valid targets to a channel)."""
    if stage not in _PROGRESS:
        reached: list[ColumnElement[bool]] = [TARGET.c[stage.type] == stage.ok]
    else:
        later = _PROGRESS[_PROGRESS.index(stage) :]
        reached = [TARGET.c[s.type] == s.ok for s in later]
        if stage is STAGES[0]:
            reached.append(TARGET.c.sender.not_in((SYSTEM_SENDER, NO_SENDER)))
    return func.coalesce(or_(*reached), false())


def _shown(day: int | None) -> ColumnElement[bool]:
    return shown_target(() if day is None else (day,))


def _failed(stage: StageColumns) -> ColumnElement[bool]:
    if stage.failure is None:
        return false()
    return and_(TARGET.c[stage.type] == stage.failure, not_(_ok(stage)))


def stage_sums() -> list[ColumnElement[Any]]:
    """Per group of target rows, for each stage in order: how many passed it, and how
    many failed it (the figures :func:`funnel_of` takes)."""
    sums: list[ColumnElement[Any]] = []
    for stage in STAGES:
        sums += [
            func.sum(case((_ok(stage), 1), else_=0)),
            func.sum(case((_failed(stage), 1), else_=0)),
        ]
    return sums


def funnel_of(channels: Sequence[tuple[int, bool, int, Sequence[int]]]) -> Funnel:
    """A message's funnel from its shown targets summed per channel: the sender, whether
    on WeCom (WeChat Work), how many targets, and their :func:`stage_sums`."""
    return _overall(
        [
            ChannelFunnel(
                channel=channel_name(known, wechatwk_sender=1 if on_wechatwk else None),
                sender=known,
                total=total,
                stages=_stage_funnel(total, figures),
            )
            for sender, on_wechatwk, total, figures in channels
            for known in [None if sender == NO_SENDER else sender]
        ]
    )


def _stage_funnel(total: int, figures: Sequence[int]) -> StageFunnel:
    counts = {}
    for index, stage in enumerate(STAGES):
        ok, failed = figures[2 * index], figures[2 * index + 1]
        counts[stage.name] = StageCounts(ok=ok, failed=failed, pending=total - ok - failed)
    return StageFunnel(**counts)


def _overall(channels: list[ChannelFunnel]) -> Funnel:
    total = sum(c.total for c in channels)
    figures = []
    for stage in STAGES:
        per_channel = [getattr(c.stages, stage.name) for c in channels]
        figures += [sum(s.ok for s in per_channel), sum(s.failed for s in per_channel)]
    return Funnel(total=total, stages=_stage_funnel(total, figures), channels=channels)


def top_errors(session: Session, msgid: str, day: int | None = None) -> list[ErrorCount]:
    """The most frequent (stage, error code) of a message's failed targets (``day``: the
    message's, when known)."""
    found: list[ErrorCount] = []
    for stage in STAGES:
        if stage.failure is None:
            continue
        code, message = (TARGET.c[column] for column in stage.error_columns)
        rows = session.execute(
            select(code, func.min(message), func.count())
            .where(of_message(TARGET, msgid, day), _failed(stage), _shown(day))
            .group_by(code)
            .order_by(func.count().desc())
            .limit(MAX_ERRORS)
        )
        found += [
            ErrorCount(code=c, message=m, stage=stage.name, targets=n)  # type: ignore[arg-type]
            for c, m, n in rows
        ]
    found.sort(key=lambda e: (-e.targets, STAGES.index(_stage(e.stage)), e.code or 0))
    return found[:MAX_ERRORS]


def _stage(name: str) -> StageColumns:
    return next(s for s in STAGES if s.name == name)


def timing(session: Session, msgid: str, since: datetime | None, day: int | None = None) -> Timing:
    """Median and p90 of the time from ``since`` to each target's success, per stage
    (``day``: the message's, when known)."""
    stages = {stage.name: _stage_timing(session, msgid, stage, since, day) for stage in STAGES}
    return Timing(**stages)


def _stage_timing(
    session: Session, msgid: str, stage: StageColumns, since: datetime | None, day: int | None
) -> StageTiming:
    at = TARGET.c[stage.at]
    reached = and_(of_message(TARGET, msgid, day), TARGET.c[stage.type] == stage.ok, _shown(day))
    if session.get_bind().dialect.name == "postgresql":
        count, median, p90 = session.execute(
            select(
                func.count(),
                func.percentile_disc(0.5).within_group(at),
                func.percentile_disc(0.9).within_group(at),
            ).where(reached)
        ).one()
    else:  # SQLite has no percentiles: the value at each rank, through an ordered read
        count = session.execute(select(func.count()).where(reached)).scalar_one()
        median, p90 = (_at_rank(session, at, reached, count, q) for q in (0.5, 0.9))
    return StageTiming(
        targets=count, median_seconds=_seconds(median, since), p90_seconds=_seconds(p90, since)
    )


def _at_rank(
    session: Session, at: Any, reached: ColumnElement[bool], count: int, fraction: float
) -> datetime | None:
    """The value percentile_disc would give: the first at or above the fraction."""
    if count == 0:
        return None
    rank = max(math.ceil(fraction * count) - 1, 0)
    value: datetime | None = session.execute(
        select(at).where(reached).order_by(at).offset(rank).limit(1)
    ).scalar_one_or_none()
    return value


def _seconds(moment: datetime | None, since: datetime | None) -> float | None:
    if moment is None or since is None:
        return None
    if moment.tzinfo is None:  # SQLite keeps no offset: the value is UTC
        moment = moment.replace(tzinfo=since.tzinfo)
    return round(max((moment - since).total_seconds(), 0.0), 3)
