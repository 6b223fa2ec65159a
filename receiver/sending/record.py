"""The outbox: every request of a send is recorded before it leaves and completed when
the provider answers, in the receiver's database.

Before anything goes out, one transaction records each request of the send as a
``message`` row in state ``pending`` (under an id of ours, ``umstrack:<send_id>:<part>``
or RongCloud's ``rc:<send_id>:<part>``) with the body as it will be sent, its tracking
key and a deadline: the longest its request can take. When the provider answers, the
row is completed (``sent`` under UMS's msgid, or ``refused``, ``not_sent``,
``unknown``). If the process dies or the database fails in between, the row stays
pending and reads as outcome unknown once its deadline has passed: the fact that the
request may have gone out is never lost, and nothing is ever resent automatically."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .. import metrics
from ..db import write_transaction
from ..errors import database_unreachable
from ..intake import record_batch
from ..store import MESSAGE, record_send
from .idempotency import Claim, claim_key
from .outcome import SendPart

log = logging.getLogger(__name__)

PENDING = "pending"
# Beyond the longest a request can take: time to record its answer.
RECORDING_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Planned:
    """A request about to leave, and the row it is recorded under until it is answered."""

    number: int
    recorded_as: str
    request: dict[str, Any]
    params: dict[str, Any] | None
    sendno: str | None = None


@dataclass(frozen=True)
class Outbox:
    """The requests of one send, recorded in ``engine`` for one provider and channel."""

    engine: Engine
    provider: str
    channelkey: str
    send_id: str

    def record_planned(
        self, planned: Sequence[Planned], *, longest: float, claim: Claim | None = None
    ) -> None:
        """Record every request before the first leaves, in one transaction with the
        idempotency key's claim. Each may take ``longest`` seconds, one after another."""
        now = datetime.now(UTC)
        with write_transaction(self.engine) as session:
            if claim is not None:
                claim_key(session, claim, send_id=self.send_id, now=now)
            for plan in planned:
                record_send(
                    session,
                    **self._facts(plan),
                    code=None,
                    message=None,
                    sent_at=now,
                    state=PENDING,
                    deadline=now + timedelta(seconds=longest * (plan.number + 1)),
                )

    def complete(
        self,
        plan: Planned,
        part: SendPart,
        *,
        state: str,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Record the provider's answer to a request under ``part.recorded_as`` (its row
        of ours moves there when UMS named a msgid), with ``events`` (records shaped like
        UMS callback records). False, logged, when the database failed: the request
        stays recorded as pending, so it reads as outcome unknown."""
        assert part.recorded_as is not None, "a part that was not sent is not recorded"
        metrics.count_sends(provider=self.provider, outcome=state)
        quarantined = 0
        try:
            with write_transaction(self.engine) as session:
                record_send(
                    session,
                    **{**self._facts(plan), "msgid": part.recorded_as},
                    code=part.code,
                    message=part.message,
                    sent_at=datetime.now(UTC),
                    state=state,
                )
                if part.recorded_as != plan.recorded_as:
                    session.execute(delete(MESSAGE).where(MESSAGE.c.msgid == plan.recorded_as))
                if events:
                    batch = record_batch(
                        session=session,
                        channelkey=self.channelkey,
                        records=events,
                        received_at=datetime.now(UTC),
                    )
                    quarantined = batch.quarantined
        except SQLAlchemyError as exc:
            metrics.count_database_error(where="outbox", unavailable=_unreachable(exc))
            log.error(
                "%s send %s part %d: the provider answered (%s) but the database failed "
                "(%s); it stays recorded as %s, outcome unknown",
                self.provider,
                self.send_id,
                plan.number,
                state,
                type(exc).__name__,
                plan.recorded_as,
            )
            return False
        if quarantined:
            log.warning(
                "%s send %s part %d: %d recipient events could not be stored (kept in quarantine)",
                self.provider,
                self.send_id,
                plan.number,
                quarantined,
            )
        return True

    def abandon(self, planned: Sequence[Planned], reason: str) -> bool:
        """Requests that will not be tried after all: ``not_sent``, with the reason. False,
        logged, when the database failed (they stay pending: outcome unknown)."""
        if not planned:
            return True
        metrics.count_sends(provider=self.provider, outcome="not_sent", n=len(planned))
        ids = [plan.recorded_as for plan in planned]
        try:
            with write_transaction(self.engine) as session:
                session.execute(
                    update(MESSAGE)
                    .where(MESSAGE.c.msgid.in_(ids), MESSAGE.c.send_state == PENDING)
                    .values(send_state="not_sent", send_message=reason, send_deadline=None)
                )
        except SQLAlchemyError as exc:
            metrics.count_database_error(where="outbox", unavailable=_unreachable(exc))
            log.error(
                "%s send %s: could not mark %d untried requests as not sent (%s)",
                self.provider,
                self.send_id,
                len(ids),
                type(exc).__name__,
            )
            return False
        return True

    def _facts(self, plan: Planned) -> dict[str, Any]:
        return {
            "msgid": plan.recorded_as,
            "provider": self.provider,
            "channelkey": self.channelkey,
            "sendno": plan.sendno,
            "params": plan.params,
            "request": plan.request,  # auth travels in headers: the body holds no secret
            "send_id": self.send_id,
            "part": plan.number,
        }


def _unreachable(exc: SQLAlchemyError) -> bool:
    return isinstance(exc, DBAPIError) and database_unreachable(exc)
