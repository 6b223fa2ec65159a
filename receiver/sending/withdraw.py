"""Withdraw a UMS message through this service, recorded before the request leaves.

From UMS's page 撤回消息 (Withdraw a message): ``POST /v1/retract/{msgid}``, one msgid
per call, with the Basic auth of the channel that sent the message; only messages sent
in the last 24 hours; success is HTTP 200 ``{"code": 0, "message": "success"}``, a
failure HTTP 400 ``{code, message}``, such as 1015055 (already withdrawn, 业务返回码,
Business return codes). Each target's outcome arrives later as a status callback, type
7 (withdrawn) or 8 (withdraw failed).

As with sends, the withdraw is recorded on the message's row before it leaves: one
conditional UPDATE claims it (``withdraw_state`` pending), so that of two withdraws of
one msgid, at the same time or one after the other, one request reaches UMS. The row is
then completed with UMS's answer: accepted, refused (with UMS's code), unknown (no
answer came: it may have been withdrawn, so it is never sent again), or not_sent (it
provably never left: the claim is released for a later withdraw). A refusal other than
1015055 withdrew nothing either, so a later withdraw may try again too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn, cast

from pydantic import Field
from sqlalchemy import CursorResult, Engine, Row, Update, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from sender.errors import NotSentError, ProviderRefusedError, SendError, UnknownOutcomeError
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.ums.client import UmsClient
from sender.ums.protocol import ALREADY_WITHDRAWN
from sender.values import is_http_url

from ..config import ConfigError, Settings
from ..db import write_transaction
from ..schemas.messages import WithdrawFacts
from ..store import MESSAGE
from .record import RECORDING_MARGIN_SECONDS

log = logging.getLogger(__name__)

PENDING: Final = "pending"
ACCEPTED: Final = "accepted"
REFUSED: Final = "refused"
NOT_SENT: Final = "not_sent"
UNKNOWN: Final = "unknown"
# Ids this service gives requests that UMS never answered with a msgid.
_OUR_IDS: Final = ("umstrack:", "rc:")

# A withdraw may be claimed when none was asked for, or when the last one provably did
# not happen: it never reached UMS, or UMS refused it for any reason but "already
# withdrawn" (should a refusal without UMS's envelope hide one that happened, asking
# again costs only a 1015055). Accepted, pending and unknown ones may have happened:
# never sent again.
_CLAIMABLE = or_(
    MESSAGE.c.withdraw_state.is_(None),
    MESSAGE.c.withdraw_state == NOT_SENT,
    and_(
        MESSAGE.c.withdraw_state == REFUSED,
        func.coalesce(MESSAGE.c.withdraw_code, 0) != ALREADY_WITHDRAWN,
    ),
)


class WithdrawOutcome(WithdrawFacts):
    """A withdraw through this service: its state, UMS's answer, and whether it is
    recorded."""

    msgid: str
    recorded: bool = Field(
        description="Whether this state is recorded. False only when the database failed "
        "after UMS answered: the withdraw then stays recorded as pending, and is never "
        "sent again."
    )


class WithdrawError(Exception):
    """A withdraw that did not succeed: ``error`` is its short code, ``outcome`` what
    is known of the withdraw (None when nothing was recorded)."""

    error: str = "withdraw_failed"

    def __init__(self, message: str, *, outcome: WithdrawOutcome | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome

    def details(self) -> dict[str, Any]:
        """The fields an answer carries beside ``error`` and ``message``."""
        if self.outcome is None:
            return {}
        return {"withdraw": self.outcome.model_dump(mode="json")}


class MessageNotFoundError(WithdrawError):
    """Nothing is known of the msgid; nothing was sent."""

    error = "not_found"


class NotWithdrawableError(WithdrawError):
    """The msgid names nothing UMS accepted (a send that failed, a RongCloud message);
    nothing was sent."""

    error = "not_withdrawable"


class AlreadyWithdrawnError(WithdrawError):
    """A withdraw was accepted, is in flight, or has an unknown outcome, or UMS answered
    1015055; nothing (more) was sent."""

    code = ALREADY_WITHDRAWN

    def __init__(
        self,
        error: str,
        message: str,
        *,
        outcome: WithdrawOutcome,
        refusal: ProviderRefusedError | None = None,
    ) -> None:
        super().__init__(message, outcome=outcome)
        self.error = error
        self.refusal = refusal

    def details(self) -> dict[str, Any]:
        """UMS's business code, UMS's own answer when it gave one, and the withdraw."""
        details = {"code": self.code, **super().details()}
        if self.refusal is not None:
            details["ums"] = _ums_answer(self.refusal)
        return details


class WithdrawFailedError(WithdrawError):
    """UMS refused the withdraw, could not be reached, or did not answer (``cause``);
    ``outcome`` is what was recorded."""

    def __init__(self, cause: SendError, *, outcome: WithdrawOutcome) -> None:
        if isinstance(cause, ProviderRefusedError):
            error, text = "ums_error", f"UMS refused the withdraw: {cause}"
        elif isinstance(cause, UnknownOutcomeError):
            error, text = "unknown_outcome", f"No answer from UMS: {cause}"
        else:
            error, text = "ums_unreachable", f"UMS could not be reached: {cause}"
        super().__init__(text, outcome=outcome)
        self.error = error
        self.cause = cause

    def details(self) -> dict[str, Any]:
        """UMS's answer when it refused, and the withdraw."""
        details = super().details()
        if isinstance(self.cause, ProviderRefusedError):
            details["ums"] = _ums_answer(self.cause)
        return details


def _ums_answer(refusal: ProviderRefusedError) -> dict[str, Any]:
    return {"code": refusal.code, "message": refusal.message, "http_status": refusal.http_status}


@dataclass(frozen=True)
class _Claimed:
    channelkey: str
    requested_at: datetime


class Withdrawer:
    """Withdraws UMS messages through the channels that sent them, recording each
    withdraw in the receiver's database."""

    def __init__(
        self,
        *,
        engine: Engine,
        channels: Mapping[str, str],
        api_base: str,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.api_base = api_base
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._client_options: dict[str, Any] = {"timeout": timeout, "retry": self.retry}
        if sleep is not None:
            self._client_options["sleep"] = sleep

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: Engine, **options: Any) -> Withdrawer:
        """A withdrawer for the channels and API base of ``settings``."""
        return cls(
            engine=engine, channels=settings.channels, api_base=settings.ums_api_base, **options
        )

    def withdraw(self, msgid: str) -> WithdrawOutcome:
        """Claim, send and complete the withdraw of ``msgid``. Raises ConfigError,
        MessageNotFoundError, NotWithdrawableError or AlreadyWithdrawnError before
        anything is sent, AlreadyWithdrawnError or WithdrawFailedError (after recording)
        when UMS did not accept it, and the database's error when the claim fails."""
        if not self.channels:
            raise ConfigError("no UMS channel is configured (UMS_CHANNELS)")
        if not is_http_url(self.api_base):
            raise ConfigError(f"UMS_API_BASE {self.api_base!r} is not an http(s) URL")
        claimed = self._claim(msgid)
        if isinstance(claimed, AlreadyWithdrawnError):
            raise claimed
        with UmsClient(
            claimed.channelkey,
            self.channels[claimed.channelkey],
            self.api_base,
            **self._client_options,
        ) as client:
            try:
                result = client.retract(msgid)
            except SendError as exc:
                self._failed(msgid, claimed, exc)
        return self._complete(msgid, claimed, ACCEPTED, result.code, result.message)

    def _claim(self, msgid: str) -> _Claimed | AlreadyWithdrawnError:
        """Check that ``msgid`` can be withdrawn and claim its withdraw, in one
        transaction; or the error that says which withdraw came before."""
        now = datetime.now(UTC)
        with write_transaction(self.engine) as session:
            row = session.execute(select(MESSAGE).where(MESSAGE.c.msgid == msgid)).one_or_none()
            if row is None:
                raise MessageNotFoundError(f"Nothing is known of msgid {msgid!r}.")
            _check_withdrawable(msgid, row.provider, row.send_state)
            if row.channelkey not in self.channels:
                raise ConfigError(
                    f"message {msgid!r} belongs to channel {row.channelkey!r}, which is not "
                    "configured (UMS_CHANNELS)"
                )
            claimed = _changed(
                session,
                update(MESSAGE)
                .where(MESSAGE.c.msgid == msgid, _CLAIMABLE)
                .values(
                    withdraw_state=PENDING,
                    withdraw_requested_at=now,
                    withdraw_deadline=now + timedelta(seconds=self._longest()),
                    withdraw_answered_at=None,
                    withdraw_code=None,
                    withdraw_message=None,
                ),
            )
            if claimed == 1:
                return _Claimed(row.channelkey, now)
            # Read again: a withdraw that claimed it meanwhile is committed by now.
            current = session.execute(select(MESSAGE).where(MESSAGE.c.msgid == msgid)).one()
            return self._came_before(session, msgid, current, now)

    def _came_before(
        self, session: Session, msgid: str, row: Row[Any], now: datetime
    ) -> AlreadyWithdrawnError:
        """The 1015055 for a withdraw that was claimed before. One still pending past the
        longest its request can take was cut off (a crash, or the database failing after
        UMS answered): it is recorded as unknown."""
        state, message = row.withdraw_state, row.withdraw_message
        asked_at: datetime = row.withdraw_requested_at or now
        deadline = row.withdraw_deadline or asked_at + timedelta(seconds=self._longest())
        if state == PENDING and deadline < now:
            state = UNKNOWN
            message = f"outcome unknown: no answer was recorded by {deadline.isoformat()}"
            session.execute(
                update(MESSAGE)
                .where(
                    MESSAGE.c.msgid == msgid,
                    MESSAGE.c.withdraw_state == PENDING,
                    MESSAGE.c.withdraw_requested_at == asked_at,
                )
                .values(withdraw_state=UNKNOWN, withdraw_message=message)
            )
        outcome = WithdrawOutcome(
            msgid=msgid,
            state=state,
            requested_at=asked_at,
            answered_at=row.withdraw_answered_at,
            code=row.withdraw_code,
            message=message,
            recorded=True,
        )
        asked = asked_at.isoformat()
        if state == PENDING:
            return AlreadyWithdrawnError(
                "withdraw_in_flight",
                f"A withdraw of {msgid!r} asked at {asked} is in flight; it is never sent twice.",
                outcome=outcome,
            )
        if state == UNKNOWN:
            return AlreadyWithdrawnError(
                "withdraw_outcome_unknown",
                f"A withdraw of {msgid!r} asked at {asked} got no answer, so it may have "
                "been withdrawn; it is never sent again.",
                outcome=outcome,
            )
        if state == ACCEPTED:
            text = f"{msgid!r} was already withdrawn through this service (asked at {asked})"
        else:
            text = (
                f"UMS answered {ALREADY_WITHDRAWN} (already withdrawn) to a withdraw of "
                f"{msgid!r} asked at {asked}"
            )
        return AlreadyWithdrawnError(
            "already_withdrawn", f"{text}; nothing was sent.", outcome=outcome
        )

    def _failed(self, msgid: str, claimed: _Claimed, error: SendError) -> NoReturn:
        """Record a withdraw UMS did not accept and raise what the caller is to learn."""
        code: int | None = None
        if isinstance(error, ProviderRefusedError):
            state, code, text = REFUSED, error.code, error.message or str(error)
        elif isinstance(error, NotSentError):
            # Releases the claim: a later withdraw may try again.
            state, text = NOT_SENT, f"not sent: {error.reason}"
        else:
            reason = error.reason if isinstance(error, UnknownOutcomeError) else str(error)
            state, text = UNKNOWN, f"outcome unknown (it may have been withdrawn): {reason}"
        log.warning("withdraw of %s failed (%s): %s", msgid, state, error)
        outcome = self._complete(msgid, claimed, state, code, text)
        if isinstance(error, ProviderRefusedError) and error.code == ALREADY_WITHDRAWN:
            raise AlreadyWithdrawnError(
                "already_withdrawn",
                f"UMS says {msgid!r} was already withdrawn: {error.message}",
                outcome=outcome,
                refusal=error,
            ) from error
        raise WithdrawFailedError(error, outcome=outcome) from error

    def _complete(
        self, msgid: str, claimed: _Claimed, state: str, code: int | None, message: str
    ) -> WithdrawOutcome:
        """Record UMS's answer on the claimed row; the outcome says whether it is
        recorded (not when the database failed: the withdraw then stays pending, so it
        is never sent again; logged)."""
        answered_at = datetime.now(UTC)
        outcome = WithdrawOutcome(
            msgid=msgid,
            state=state,  # type: ignore[arg-type]
            requested_at=claimed.requested_at,
            answered_at=answered_at,
            code=code,
            message=message,
            recorded=False,
        )
        try:
            with write_transaction(self.engine) as session:
                completed = _changed(
                    session,
                    update(MESSAGE)
                    .where(
                        MESSAGE.c.msgid == msgid,
                        MESSAGE.c.withdraw_state == PENDING,
                        MESSAGE.c.withdraw_requested_at == claimed.requested_at,
                    )
                    .values(
                        withdraw_state=state,
                        withdraw_answered_at=answered_at,
                        withdraw_code=code,
                        withdraw_message=message,
                    ),
                )
        except SQLAlchemyError as exc:
            log.error(
                "withdraw of %s: UMS answered (%s) but the database failed (%s); it stays "
                "recorded as pending",
                msgid,
                state,
                type(exc).__name__,
            )
            return outcome
        if completed != 1:
            log.error("withdraw of %s: its claim was taken over; %s is not recorded", msgid, state)
            return outcome
        return outcome.model_copy(update={"recorded": True})

    def _longest(self) -> float:
        """Seconds one withdraw can take at most, with a margin for the recording."""
        return self.retry.longest(self.timeout) + RECORDING_MARGIN_SECONDS


def _changed(session: Session, statement: Update) -> int:
    """Run an UPDATE; how many rows it changed."""
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def _check_withdrawable(msgid: str, provider: str, send_state: str | None) -> None:
    """Refuse what UMS never accepted: nothing of it could be withdrawn."""
    if provider != "ums" or msgid.startswith(_OUR_IDS):
        raise NotWithdrawableError(
            f"{msgid!r} is no UMS msgid (provider {provider}): UMS never accepted it, so "
            "there is nothing to withdraw."
        )
    if send_state not in (None, "sent"):
        raise NotWithdrawableError(
            f"{msgid!r} was not sent (its send is {send_state}): there is nothing to withdraw."
        )
    if msgid in (".", ".."):
        raise NotWithdrawableError(f"{msgid!r} cannot name a message in UMS's withdraw path.")
