"""Send RongCloud template private messages and record each request (a ``message``
row and one event per recipient) in the receiver's database.

One *send* is the body of RongCloud's publish_template.json for any number of
recipients. It is validated whole before anything goes out, then cut into *parts* of
at most 1000 recipients, each signed and held to the app's rate limit. Every request
is recorded before the first leaves (a ``message`` row under an id of ours,
``rc:<send_id>:<part>``, since RongCloud gives no message id; see :mod:`.record`) and
completed when RongCloud answers, with one event per recipient, ``submitted`` or
``submit_failed``. RongCloud sends no delivery callbacks for messages sent through its
server API, so those events are all the status there is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from sender.errors import InvalidMessageError, SendError
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.rongcloud import PROVIDER, RongCloudClient, split_template, validate_template
from sender.ums.protocol import RONGCLOUD_SENDER, TRACKING_PARAM, StatusType

from ..config import ConfigError, Settings
from ..schemas.storable import unstorable
from .outcome import (
    RongCloudOutcome,
    RongCloudPart,
    SendFailedError,
    failure_answer,
    failure_state,
)
from .record import RECORDING_MARGIN_SECONDS, Outbox, Planned
from .request import unstorable_reason

log = logging.getLogger(__name__)

# RongCloud's rate limit counts recipients a minute: the longest a request waits for it.
RATE_WINDOW_SECONDS = 60.0


def record_id(send_id: str, part: int) -> str:
    """The id a request of a send is recorded under (RongCloud gives no message id)."""
    return f"rc:{send_id}:{part}"


class RongCloudSender:
    """Validates, splits, sends and records template private messages of one app."""

    def __init__(
        self,
        *,
        engine: Engine,
        app_key: str,
        app_secret: str,
        api_base: str,
        backup_api_base: str | None = None,
        **client_options: Any,
    ) -> None:
        self.engine = engine
        self.app_key = app_key
        self._app_secret = app_secret
        self.api_base = api_base
        self.backup_api_base = backup_api_base
        # timeout, retry, sleep, limiter, nonce, wall_clock: see RongCloudClient.
        self._client_options = client_options

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: Engine, **client_options: Any
    ) -> RongCloudSender:
        """A sender for the RongCloud app of ``settings``; ConfigError without one."""
        if not settings.rongcloud_app_key or not settings.rongcloud_app_secret:
            raise ConfigError("set RONGCLOUD_APP_KEY and RONGCLOUD_APP_SECRET")
        return cls(
            engine=engine,
            app_key=settings.rongcloud_app_key,
            app_secret=settings.rongcloud_app_secret,
            api_base=settings.rongcloud_api_base,
            backup_api_base=settings.rongcloud_backup_api_base,
            **client_options,
        )

    def send(
        self, message: Any, *, progress: Callable[[str], None] | None = None
    ) -> RongCloudOutcome:
        """Record every request, then send and complete each; raises InvalidMessageError
        before anything is recorded or sent, and SendFailedError (after recording the
        failed request) when RongCloud refuses or cannot be reached."""
        if found := unstorable(message):
            raise InvalidMessageError(
                found.path or "message", unstorable_reason(found), provider=PROVIDER
            )
        validate_template(message, max_recipients=None)
        bodies = split_template(message)
        outcome = RongCloudOutcome(send_id=uuid.uuid4().hex, app_key=self.app_key)
        outbox = Outbox(self.engine, PROVIDER, self.app_key, outcome.send_id)
        params = {TRACKING_PARAM: outcome.send_id}
        planned = [
            Planned(
                number=number,
                recorded_as=record_id(outcome.send_id, number),
                request=body,
                params=params,
            )
            for number, body in enumerate(bodies)
        ]
        outbox.record_planned(planned, longest=self._longest())
        say = progress or (lambda _text: None)
        total = len(bodies)
        with RongCloudClient(
            self.app_key,
            self._app_secret,
            self.api_base,
            backup_base_url=self.backup_api_base,
            **self._client_options,
        ) as client:
            for plan in planned:
                count = len(plan.request["toUserId"])
                label = f"part {plan.number + 1}/{total}"

                def waiting(seconds: float, label: str = label) -> None:
                    say(f"{label}: waiting {seconds:.1f} s for RongCloud's rate limit")

                say(f"{label}: sending to {count} recipients")
                try:
                    result = client.publish_template(plan.request, on_wait=waiting)
                except SendError as exc:
                    code, text = failure_answer(exc)
                    part = RongCloudPart(
                        part=plan.number,
                        recipients=count,
                        status="failed",
                        recorded_as=plan.recorded_as,
                        code=code,
                        message=text,
                        base_url=exc.base_url,
                    )
                    recorded = outbox.complete(
                        plan, part, state=failure_state(exc), events=_events(plan, part)
                    )
                    outcome.parts.append(part.model_copy(update={"recorded": recorded}))
                    rest = planned[plan.number + 1 :]
                    abandoned = outbox.abandon(rest, f"not tried: part {plan.number} failed")
                    outcome.parts.extend(
                        RongCloudPart(
                            part=p.number,
                            recipients=len(p.request["toUserId"]),
                            status="not_tried",
                            recorded_as=p.recorded_as,
                            recorded=abandoned,
                        )
                        for p in rest
                    )
                    log.warning("RongCloud send %s %s failed: %s", outcome.send_id, label, exc)
                    raise SendFailedError(exc, outcome) from exc
                part = RongCloudPart(
                    part=plan.number,
                    recipients=count,
                    status="submitted",
                    recorded_as=plan.recorded_as,
                    code=result.code,
                    message="success",
                    base_url=result.base_url,
                    message_uids=result.message_uids or None,
                )
                recorded = outbox.complete(plan, part, state="sent", events=_events(plan, part))
                outcome.parts.append(part.model_copy(update={"recorded": recorded}))
                say(f"{label}: submitted")
        return outcome

    def _longest(self) -> float:
        """Seconds one request can take at most: both domains, a rate-limit wait, and a
        margin for the recording."""
        retry = self._client_options.get("retry") or RetryPolicy()
        timeout = self._client_options.get("timeout", DEFAULT_TIMEOUT)
        return 2 * retry.longest(timeout) + RATE_WINDOW_SECONDS + RECORDING_MARGIN_SECONDS


def _events(plan: Planned, part: RongCloudPart) -> list[dict[str, Any]]:
    """One event per recipient, shaped like UMS callback records, so that summaries,
    timelines and target statuses treat RongCloud sends like any other message."""
    failed = part.status == "failed"
    sent_time = int(datetime.now(UTC).timestamp())
    return [
        {
            "type": (StatusType.SUBMIT_FAILED if failed else StatusType.SUBMITTED).value,
            "msgid": part.recorded_as,
            "userid": user,
            "sender": RONGCLOUD_SENDER,
            "sent_time": sent_time,
            "params": plan.params,
            **({"error": {"code": part.code, "message": part.message}} if failed else {}),
        }
        for user in plan.request["toUserId"]
    ]
