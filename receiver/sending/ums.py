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
from typing import Any

from sqlalchemy import Engine

from sender.errors import InvalidMessageError, SendError
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.ums.client import UmsClient, tracked_body
from sender.ums.protocol import SendKind
from sender.ums.rules import (
    CUSTOM_AUDIENCES,
    render_personalised,
    split_message,
    validate_message,
)

from ..config import ConfigError, Settings
from .idempotency import Claim
from .outcome import SendFailedError, UmsOutcome, UmsPart, failure_answer, failure_state
from .record import RECORDING_MARGIN_SECONDS, Outbox, Planned
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

    def prepare(
        self, request: SendRequest, *, dry_run: bool = False
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The channel and the parts of a send, after checking every rule; raises
        InvalidMessageError (or ConfigError) before anything is sent. A dry run needs no
        configured channel."""
        channelkey = self._channel(request.channelkey, dry_run=dry_run)
        if request.recipients is not None:
            # SendRequest has made sure a personalised send is no broadcast.
            messages = render_personalised(request.message, request.recipients)
        else:
            messages = [request.message]
        parts: list[dict[str, Any]] = []
        for message in messages:
            # The whole audience first (however large), then each request as UMS sees it.
            validate_message(message, kind=request.kind, max_ids=None)
            self._check_callback_url(message)
            for part in split_message(message):
                validate_message(part, kind=request.kind)
                parts.append(part)
        return channelkey, parts

    def send(
        self, request: SendRequest, *, dry_run: bool = False, claim: Claim | None = None
    ) -> UmsOutcome:
        """Record every part, then send and complete each. Raises InvalidMessageError before
        anything is recorded or sent, KeyTakenError when ``claim``'s key is already
        claimed (nothing sent), and SendFailedError (after recording) when UMS refuses or
        cannot be reached."""
        channelkey, messages = self.prepare(request, dry_run=dry_run)
        send_id = uuid.uuid4().hex
        outcome = UmsOutcome(
            send_id=send_id, kind=request.kind, channelkey=channelkey, dry_run=dry_run
        )
        bodies = [tracked_body(message, send_id, self.callback_url) for message in messages]
        if dry_run or channelkey is None:
            outcome.parts.extend(
                UmsPart(part=number, recipients=_recipients(body), body=body)
                for number, body in enumerate(bodies)
            )
            return outcome
        outbox = Outbox(self.engine, "ums", channelkey, send_id)
        planned = [
            Planned(
                number=number,
                recorded_as=f"umstrack:{send_id}:{number}",
                request=body,
                params=body["callback"]["params"],
                sendno=_sendno(body),
            )
            for number, body in enumerate(bodies)
        ]
        outbox.record_planned(planned, longest=self._longest(), claim=claim)
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
            for plan in planned:
                try:
                    result = call(plan.request, send_id=send_id)
                except SendError as exc:
                    code, text = failure_answer(exc)
                    part = UmsPart(
                        part=plan.number,
                        recipients=_recipients(plan.request),
                        sendno=exc.sendno,
                        code=code,
                        message=text,
                        # No msgid came back: the row stays under the id of ours.
                        recorded_as=plan.recorded_as,
                    )
                    recorded = outbox.complete(plan, part, state=failure_state(exc))
                    outcome.parts.append(part.model_copy(update={"recorded": recorded}))
                    outbox.abandon(
                        planned[plan.number + 1 :], f"not tried: part {plan.number} failed"
                    )
                    log.warning("send %s part %d failed: %s", send_id, plan.number, exc)
                    raise SendFailedError(exc, outcome) from exc
                part = UmsPart(
                    part=plan.number,
                    recipients=_recipients(result.body),
                    msgid=result.msgid,
                    sendno=result.sendno,
                    code=result.code,
                    message=result.message,
                    recorded_as=result.msgid,
                )
                if outbox.complete(plan, part, state="sent"):
                    outcome.parts.append(part.model_copy(update={"recorded": True}))
                else:  # the caller still learns the msgid
                    outcome.parts.append(part.model_copy(update={"recorded_as": plan.recorded_as}))
        return outcome

    def _channel(self, channelkey: str | None, *, dry_run: bool) -> str | None:
        if not self.channels:
            if dry_run:
                return channelkey
            raise ConfigError("no UMS channel is configured (UMS_CHANNELS)")
        if channelkey is None:
            return next(iter(self.channels))
        if channelkey not in self.channels:
            raise InvalidMessageError("channelkey", f"{channelkey!r} is not a configured channel")
        return channelkey

    def _check_callback_url(self, message: Mapping[str, Any]) -> None:
        """With PUBLIC_URL set, callbacks go to this service: a message may repeat that URL
        but never name another (that would divert its callbacks, channel auth included)."""
        callback = message.get("callback")
        url = callback.get("url") if isinstance(callback, Mapping) else None
        if self.callback_url is not None and url is not None and url != self.callback_url:
            raise InvalidMessageError(
                "callback.url",
                f"must be left out: this service sends callbacks to {self.callback_url} "
                "(PUBLIC_URL)",
            )

    def _longest(self) -> float:
        """Seconds one request can take at most, with a margin for the recording."""
        retry = self._client_options.get("retry") or RetryPolicy()
        timeout = self._client_options.get("timeout", DEFAULT_TIMEOUT)
        return retry.longest(timeout) + RECORDING_MARGIN_SECONDS


def _sendno(body: Mapping[str, Any]) -> str | None:
    option = body.get("option")
    sendno = option.get("sendno") if isinstance(option, Mapping) else None
    return None if sendno is None else str(sendno)


def _recipients(body: Mapping[str, Any]) -> int:
    """How many ids a request names (userids and custom channel ids)."""
    count = len(body.get("aud_userid") or [])
    for key in CUSTOM_AUDIENCES:
        for entry in body.get(key) or []:
            count += len(entry.get("data") or [])
    return count
