"""Send RongCloud template private messages and record each request (a ``message``
row and one event per recipient) in the receiver's database.

One *send* is the body of RongCloud's publish_template.json for any number of
recipients. It is validated whole before anything goes out, then cut into *parts* of
at most 1000 recipients, each signed and held to the app's rate limit, and recorded
when RongCloud answers: a ``message`` row under an id of ours (``rc:<send_id>:<part>``,
since RongCloud gives no message id) and one event per recipient, ``submitted`` or
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

from sender.errors import SendError
from sender.rongcloud import PROVIDER, RongCloudClient, split_template, validate_template
from sender.ums.protocol import RONGCLOUD_SENDER, TRACKING_PARAM, StatusType

from ..config import ConfigError, Settings
from .outcome import RongCloudOutcome, RongCloudPart, SendFailedError, failure_answer
from .record import record_part

log = logging.getLogger(__name__)


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
        """Send to every recipient and record each request; raises InvalidMessageError
        before anything is sent, and SendFailedError (after recording the failed
        request) when RongCloud refuses or cannot be reached."""
        validate_template(message, max_recipients=None)
        bodies = split_template(message)
        outcome = RongCloudOutcome(send_id=uuid.uuid4().hex, app_key=self.app_key)
        say = progress or (lambda _text: None)
        total = len(bodies)
        with RongCloudClient(
            self.app_key,
            self._app_secret,
            self.api_base,
            backup_base_url=self.backup_api_base,
            **self._client_options,
        ) as client:
            for number, body in enumerate(bodies):
                count = len(body["toUserId"])
                label = f"part {number + 1}/{total}"

                def waiting(seconds: float, label: str = label) -> None:
                    say(f"{label}: waiting {seconds:.1f} s for RongCloud's rate limit")

                say(f"{label}: sending to {count} recipients")
                try:
                    result = client.publish_template(body, on_wait=waiting)
                except SendError as exc:
                    code, text = failure_answer(exc)
                    part = RongCloudPart(
                        part=number,
                        recipients=count,
                        status="failed",
                        recorded_as=record_id(outcome.send_id, number),
                        code=code,
                        message=text,
                        base_url=exc.base_url,
                    )
                    self._record(outcome, part, body)
                    outcome.parts.append(part)
                    outcome.parts.extend(
                        RongCloudPart(part=n, recipients=len(b["toUserId"]), status="not_tried")
                        for n, b in enumerate(bodies[number + 1 :], start=number + 1)
                    )
                    log.warning("RongCloud send %s %s failed: %s", outcome.send_id, label, exc)
                    raise SendFailedError(exc, outcome) from exc
                part = RongCloudPart(
                    part=number,
                    recipients=count,
                    status="submitted",
                    recorded_as=record_id(outcome.send_id, number),
                    code=result.code,
                    message="success",
                    base_url=result.base_url,
                    message_uids=result.message_uids or None,
                )
                self._record(outcome, part, body)
                outcome.parts.append(part)
                say(f"{label}: submitted")
        return outcome

    def _record(self, outcome: RongCloudOutcome, part: RongCloudPart, body: dict[str, Any]) -> None:
        """The message row and one event per recipient."""
        now = datetime.now(UTC)
        params = {TRACKING_PARAM: outcome.send_id}
        failed = part.status == "failed"
        # Shaped like UMS callback records, so that summaries, timelines and target
        # statuses treat RongCloud sends like any other message.
        events: list[dict[str, Any]] = [
            {
                "type": (StatusType.SUBMIT_FAILED if failed else StatusType.SUBMITTED).value,
                "msgid": part.recorded_as,
                "userid": user,
                "sender": RONGCLOUD_SENDER,
                "sent_time": int(now.timestamp()),
                "params": params,
                **({"error": {"code": part.code, "message": part.message}} if failed else {}),
            }
            for user in body["toUserId"]
        ]
        record_part(
            self.engine,
            provider=PROVIDER,
            channelkey=self.app_key,
            send_id=outcome.send_id,
            part=part,
            request=body,
            params=params,
            sent_at=now,
            events=events,
        )
