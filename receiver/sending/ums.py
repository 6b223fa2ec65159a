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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine

from sender.errors import (
    InvalidMessageError,
    NotSentError,
    ProviderRefusedError,
    SendError,
    UnknownOutcomeError,
)
from sender.http import DEFAULT_TIMEOUT, RetryPolicy
from sender.ums.client import SendResult, UmsClient
from sender.ums.protocol import SendKind
from sender.ums.rules import (
    CUSTOM_AUDIENCES,
    render_personalised,
    split_message,
    validate_message,
)

from ..config import ConfigError, Settings
from ..db import write_transaction
from ..store import record_send
from .outcome import SendFailedError

log = logging.getLogger(__name__)

CALLBACK_PATH = "/callbacks/ums"
# Keys of a send request that are ours, not UMS's.
_CONTROL_KEYS = ("broadcast", "template", "channelkey", "recipients")


@dataclass(frozen=True)
class SendRequest:
    """What to send: a UMS message of one kind, or a personalised template."""

    message: dict[str, Any]
    kind: SendKind
    channelkey: str | None = None
    # Personalised: ``message`` is the template and these the recipients with their
    # values (the format of sender.ums_rules.render_personalised).
    recipients: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Part:
    """One request of a send and what became of it."""

    number: int
    body: dict[str, Any]  # as sent (or, on a dry run, as it would be sent)
    recipients: int  # ids in its audience; 0 for a broadcast, tags or segments
    msgid: str | None = None
    sendno: str | None = None
    code: int | None = None
    message: str | None = None
    recorded_as: str | None = None  # the message row's id (msgid, or ours on failure)

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.number,
            "msgid": self.msgid,
            "sendno": self.sendno,
            "recipients": self.recipients,
            "code": self.code,
            "message": self.message,
            "recorded_as": self.recorded_as,
        }


@dataclass
class SendOutcome:
    """A whole send: its id, channel and parts (sent, failed, or not tried)."""

    send_id: str
    kind: SendKind
    channelkey: str
    parts: list[Part] = field(default_factory=list)
    dry_run: bool = False

    @property
    def msgids(self) -> list[str]:
        return [p.msgid for p in self.parts if p.msgid]

    def as_dict(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "kind": str(self.kind),
            "channelkey": self.channelkey,
            "dry_run": self.dry_run,
            "msgids": self.msgids,
            # A dry run shows each request as it would go out.
            "parts": [{**p.as_dict(), **({"body": p.body} if self.dry_run else {})}
                      for p in self.parts],
        }  # fmt: skip


def parse_request(
    body: Any,
    *,
    broadcast: bool = False,
    template: bool = False,
    channelkey: str | None = None,
) -> SendRequest:
    """A send request from a JSON body: a UMS message plus our optional ``broadcast``,
    ``template``, ``channelkey`` and (personalised sends) ``recipients`` keys; the
    keyword arguments (command-line flags) add to them."""
    if not isinstance(body, dict):
        raise InvalidMessageError("message", "must be a JSON object")
    for flag in ("broadcast", "template"):
        if flag in body and not isinstance(body[flag], bool):
            raise InvalidMessageError(flag, "must be true or false")
    chosen = body.get("channelkey", channelkey)
    if chosen is not None and not isinstance(chosen, str):
        raise InvalidMessageError("channelkey", "must be a string")
    recipients = body.get("recipients")
    if recipients is not None and not isinstance(recipients, list):
        raise InvalidMessageError("recipients", "must be an array")
    is_broadcast = broadcast or body.get("broadcast", False)
    is_template = template or body.get("template", False)
    if recipients is not None and is_broadcast:
        raise InvalidMessageError(
            "recipients", "a personalised send names its recipients: no broadcast"
        )
    kinds = {
        (False, False): SendKind.SENT,
        (True, False): SendKind.BROADCAST,
        (False, True): SendKind.TEMPLATE_SENT,
        (True, True): SendKind.TEMPLATE_BROADCAST,
    }
    message = {k: v for k, v in body.items() if k not in _CONTROL_KEYS}
    return SendRequest(message, kinds[is_broadcast, is_template], chosen, recipients)


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
            if request.kind.is_broadcast:
                raise InvalidMessageError("recipients", "a personalised send cannot be a broadcast")
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

    def send(self, request: SendRequest, *, dry_run: bool = False) -> SendOutcome:
        """Send every part and record each; raises InvalidMessageError before anything is sent,
        and SendFailedError (after recording) when UMS refuses or cannot be reached."""
        channelkey, bodies = self.prepare(request)
        outcome = SendOutcome(uuid.uuid4().hex, request.kind, channelkey, dry_run=dry_run)
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
                    outcome.parts.append(Part(number, sent, _recipients(sent)))
                    continue
                try:
                    result = call(body, send_id=outcome.send_id)
                except SendError as exc:
                    part = self._record_failure(outcome, number, client, body, exc)
                    outcome.parts.append(part)
                    log.warning("send %s part %d failed: %s", outcome.send_id, number, exc)
                    raise SendFailedError(exc, outcome) from exc
                outcome.parts.append(self._record_success(outcome, number, result))
        return outcome

    def _channel(self, channelkey: str | None) -> str:
        if not self.channels:
            raise ConfigError("no UMS channel is configured (UMS_CHANNELS)")
        if channelkey is None:
            return next(iter(self.channels))
        if channelkey not in self.channels:
            raise InvalidMessageError("channelkey", f"{channelkey!r} is not a configured channel")
        return channelkey

    def _record_success(self, outcome: SendOutcome, number: int, result: SendResult) -> Part:
        part = Part(
            number,
            result.body,
            _recipients(result.body),
            msgid=result.msgid,
            sendno=result.sendno,
            code=result.code,
            message=result.message,
            recorded_as=result.msgid,
        )
        self._record(outcome, part)
        return part

    def _record_failure(
        self,
        outcome: SendOutcome,
        number: int,
        client: UmsClient,
        body: dict[str, Any],
        error: SendError,
    ) -> Part:
        sent = client.build_body(body, outcome.send_id)
        code, sendno = None, getattr(error, "sendno", None)
        if isinstance(error, ProviderRefusedError):
            code, text = error.code, error.message
        elif isinstance(error, UnknownOutcomeError):
            text = f"outcome unknown (the message may have been sent): {error.reason}"
        elif isinstance(error, NotSentError):
            text = f"not sent: {error.reason}"
        else:
            text = str(error)
        # No msgid came back: the row is found under an id of ours instead.
        part = Part(
            number,
            sent,
            _recipients(sent),
            sendno=sendno,
            code=code,
            message=text,
            recorded_as=f"umstrack:{outcome.send_id}:{number}",
        )
        self._record(outcome, part)
        return part

    def _record(self, outcome: SendOutcome, part: Part) -> None:
        assert part.recorded_as is not None
        callback = part.body.get("callback") or {}
        with write_transaction(self.engine) as session:
            record_send(
                session,
                msgid=part.recorded_as,
                provider="ums",
                channelkey=outcome.channelkey,
                sendno=part.sendno,
                params=callback.get("params"),
                request=part.body,  # auth travels in a header: the body holds no secret
                code=part.code,
                message=part.message,
                send_id=outcome.send_id,
                part=part.number,
                sent_at=datetime.now(UTC),
            )


def _recipients(body: Mapping[str, Any]) -> int:
    """How many ids a request names (userids and custom channel ids)."""
    count = len(body.get("aud_userid") or [])
    for key in CUSTOM_AUDIENCES:
        for entry in body.get(key) or []:
            count += len(entry.get("data") or [])
    return count


def summary_path(msgid: str) -> str:
    """The read API path of a message's summary."""
    return "/api/messages/" + quote(msgid, safe=":@!$&'()*+,;=")
