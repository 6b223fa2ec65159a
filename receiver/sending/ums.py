"""Send through UMS so that every message can be tracked.

One *send* is what a caller asks for: a UMS message (or a personalised template
with values per recipient) of one kind through one channel. Before anything goes
out it is validated whole, then cut into *parts*, the requests UMS takes: at most
1000 ids each, one per distinct personalised content. Each part gets its own
msgid and is recorded (a ``message`` row, in the receiver's database) as soon as
UMS answers, failures too; all parts share the send's id, which also rides in
every part's ``callback.params`` so that callbacks link back to it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from sender.errors import InvalidMessageError, SendError
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.ums.client import UmsClient
from sender.ums.protocol import SendKind
from sender.ums.rules import (
    CUSTOM_AUDIENCES,
    render_personalised,
    split_message,
    validate_message,
)

from ..config import ConfigError, Settings
from .outcome import SendFailedError, UmsOutcome, UmsPart, failure_answer
from .record import record_part
from .request import SendRequest

log = logging.getLogger(__name__)

CALLBACK_PATH = "/callbacks/ums"


class UmsSender:
    """Validates, splits, sends and records UMS messages for the configured channels."""

    def __init__(
        self,
        *,
        engine: Engine,
        channels: Mapping[str, str],
        api_base: str,
        callback_url: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.engine = engine
        self.channels = dict(channels)
        self.api_base = api_base
        self.callback_url = callback_url
        self._client_options: dict[str, Any] = {"timeout": timeout, "retry": retry}
        if sleep is not None:
            self._client_options["sleep"] = sleep

    @classmethod
    def from_settings(cls, settings: Settings, *, engine: Engine, **options: Any) -> UmsSender:
        """A sender for the channels, API base and public URL of ``settings``."""
        callback_url = (
            settings.public_url.rstrip("/") + CALLBACK_PATH if settings.public_url else None
        )
        return cls(
            engine=engine,
            channels=settings.channels,
            api_base=settings.ums_api_base,
            callback_url=callback_url,
            **options,
        )

    def prepare(self, request: SendRequest) -> tuple[str, list[dict[str, Any]]]:
        """The channel and the parts of a send, after checking every rule; raises
        InvalidMessageError (or ConfigError) before anything is sent."""
        channelkey = self._channel(request.channelkey)
        if request.recipients is not None:
            # SendRequest has made sure a personalised send is no broadcast.
            messages = render_personalised(request.message, request.recipients)
        else:
            messages = [request.message]
        parts: list[dict[str, Any]] = []
        for message in messages:
            # The whole audience first (however large), then each request as UMS sees it.
            validate_message(message, kind=request.kind, max_ids=None)
            for part in split_message(message):
                validate_message(part, kind=request.kind)
                parts.append(part)
        return channelkey, parts

    def send(self, request: SendRequest, *, dry_run: bool = False) -> UmsOutcome:
        """Send every part and record each; raises InvalidMessageError before anything is sent,
        and SendFailedError (after recording) when UMS refuses or cannot be reached."""
        channelkey, bodies = self.prepare(request)
        outcome = UmsOutcome(
            send_id=uuid.uuid4().hex, kind=request.kind, channelkey=channelkey, dry_run=dry_run
        )
        with UmsClient(
            channelkey,
            self.channels[channelkey],
            self.api_base,
            callback_url=self.callback_url,
            **self._client_options,
        ) as client:
            call = {
                SendKind.SENT: client.send,
                SendKind.BROADCAST: client.broadcast,
                SendKind.TEMPLATE_SENT: client.template_send,
                SendKind.TEMPLATE_BROADCAST: client.template_broadcast,
            }[request.kind]
            for number, body in enumerate(bodies):
                if dry_run:
                    sent = client.build_body(body, outcome.send_id)
                    part = UmsPart(part=number, recipients=_recipients(sent), body=sent)
                    outcome.parts.append(part)
                    continue
                try:
                    result = call(body, send_id=outcome.send_id)
                except SendError as exc:
                    sent = client.build_body(body, outcome.send_id)
                    code, text = failure_answer(exc)
                    part = UmsPart(
                        part=number,
                        recipients=_recipients(sent),
                        sendno=exc.sendno,
                        code=code,
                        message=text,
                        # No msgid came back: the row is found under an id of ours instead.
                        recorded_as=f"umstrack:{outcome.send_id}:{number}",
                    )
                    self._record(outcome, part, sent)
                    outcome.parts.append(part)
                    log.warning("send %s part %d failed: %s", outcome.send_id, number, exc)
                    raise SendFailedError(exc, outcome) from exc
                part = UmsPart(
                    part=number,
                    recipients=_recipients(result.body),
                    msgid=result.msgid,
                    sendno=result.sendno,
                    code=result.code,
                    message=result.message,
                    recorded_as=result.msgid,
                )
                self._record(outcome, part, result.body)
                outcome.parts.append(part)
        return outcome

    def _channel(self, channelkey: str | None) -> str:
        if not self.channels:
            raise ConfigError("no UMS channel is configured (UMS_CHANNELS)")
        if channelkey is None:
            return next(iter(self.channels))
        if channelkey not in self.channels:
            raise InvalidMessageError("channelkey", f"{channelkey!r} is not a configured channel")
        return channelkey

    def _record(self, outcome: UmsOutcome, part: UmsPart, body: dict[str, Any]) -> None:
        """Record a request as it was sent (``body``)."""
        callback = body.get("callback") or {}
        record_part(
            self.engine,
            provider="ums",
            channelkey=outcome.channelkey,
            send_id=outcome.send_id,
            part=part,
            request=body,
            params=callback.get("params"),
            sendno=part.sendno,
            sent_at=datetime.now(UTC),
        )


def _recipients(body: Mapping[str, Any]) -> int:
    """How many ids a request names (userids and custom channel ids)."""
    count = len(body.get("aud_userid") or [])
    for key in CUSTOM_AUDIENCES:
        for entry in body.get(key) or []:
            count += len(entry.get("data") or [])
    return count
