"""Send RongCloud template private messages and record each request (a ``message``
row and one event per recipient) in the receiver's database."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from sender.errors import (
    InvalidMessageError,
    NotSentError,
    ProviderRefusedError,
    SendError,
    UnknownOutcomeError,
)
from sender.rongcloud import (
    PROVIDER,
    PublishResult,
    RongCloudClient,
    preview_template,
    split_template,
    validate_template,
)
from sender.ums.protocol import RONGCLOUD_SENDER, TRACKING_PARAM

from ..config import ConfigError, Settings
from ..db import make_engine, migrate, write_transaction
from ..intake import record_batch
from ..store import record_send
from .outcome import SendFailedError

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- send and record


@dataclass(frozen=True)
class TemplatePart:
    """One request of a send and what became of it."""

    number: int
    recipients: int
    status: str  # "submitted", "failed" or "not_tried"
    recorded_as: str | None = None  # the message row's id, rc:<send_id>:<part>
    code: int | None = None
    message: str | None = None
    base_url: str | None = None
    message_uids: list[Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "part": self.number,
            "recipients": self.recipients,
            "status": self.status,
            "recorded_as": self.recorded_as,
            "code": self.code,
            "message": self.message,
            "base_url": self.base_url,
            "message_uids": self.message_uids,
        }


@dataclass
class TemplateOutcome:
    """A whole send: its id, app and parts."""

    send_id: str
    app_key: str
    parts: list[TemplatePart] = field(default_factory=list)

    @property
    def message_ids(self) -> list[str]:
        """Ids of the recorded messages (one per request that went out or failed)."""
        return [p.recorded_as for p in self.parts if p.recorded_as]

    def as_dict(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "provider": PROVIDER,
            "app_key": self.app_key,
            "dry_run": False,
            "recipients": sum(p.recipients for p in self.parts),
            "submitted": sum(p.recipients for p in self.parts if p.status == "submitted"),
            "messages": self.message_ids,
            "parts": [p.as_dict() for p in self.parts],
        }


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
            raise ConfigError(
                "no RongCloud app is configured (RONGCLOUD_APP_KEY, RONGCLOUD_APP_SECRET)"
            )
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
    ) -> TemplateOutcome:
        """Send to every recipient and record each request; raises InvalidMessageError
        before anything is sent, and SendFailedError (after recording the failed
        request) when RongCloud refuses or cannot be reached."""
        validate_template(message, max_recipients=None)
        bodies = split_template(message)
        outcome = TemplateOutcome(uuid.uuid4().hex, self.app_key)
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
                    outcome.parts.append(self._record_failure(outcome, number, body, exc))
                    outcome.parts += [
                        TemplatePart(n, len(b["toUserId"]), "not_tried")
                        for n, b in enumerate(bodies[number + 1 :], start=number + 1)
                    ]
                    logger.warning("RongCloud send %s %s failed: %s", outcome.send_id, label, exc)
                    raise SendFailedError(exc, outcome) from exc
                outcome.parts.append(self._record_success(outcome, number, body, result))
                say(f"{label}: submitted")
        return outcome

    def _record_success(
        self, outcome: TemplateOutcome, number: int, body: dict[str, Any], result: PublishResult
    ) -> TemplatePart:
        part = TemplatePart(
            number,
            len(body["toUserId"]),
            "submitted",
            recorded_as=record_id(outcome.send_id, number),
            code=result.code,
            message="success",
            base_url=result.base_url,
            message_uids=result.message_uids or None,
        )
        self._record(outcome, part, body, error=None)
        return part

    def _record_failure(
        self, outcome: TemplateOutcome, number: int, body: dict[str, Any], error: SendError
    ) -> TemplatePart:
        code, base_url = None, getattr(error, "base_url", None)
        if isinstance(error, ProviderRefusedError):
            code, text = error.code, error.message or str(error)
        elif isinstance(error, UnknownOutcomeError):
            text = f"outcome unknown (the message may have been sent): {error.reason}"
        elif isinstance(error, NotSentError):
            text = f"not sent: {error.reason}"
        else:
            text = str(error)
        part = TemplatePart(
            number,
            len(body["toUserId"]),
            "failed",
            recorded_as=record_id(outcome.send_id, number),
            code=code,
            message=text,
            base_url=base_url,
        )
        self._record(outcome, part, body, error={"code": code, "message": text})
        return part

    def _record(
        self,
        outcome: TemplateOutcome,
        part: TemplatePart,
        body: dict[str, Any],
        *,
        error: dict[str, Any] | None,
    ) -> None:
        """The message row and one event per recipient, in one transaction."""
        now = datetime.now(UTC)
        params = {TRACKING_PARAM: outcome.send_id}
        msgid = part.recorded_as
        assert msgid is not None
        # Shaped like UMS callback records, so that summaries, timelines and target
        # statuses treat RongCloud sends like any other message.
        records: list[dict[str, Any]] = []
        for user in body["toUserId"]:
            record: dict[str, Any] = {
                "type": 2 if error is None else 3,
                "msgid": msgid,
                "userid": user,
                "sender": RONGCLOUD_SENDER,
                "sent_time": int(now.timestamp()),
                "params": params,
            }
            if error is not None:
                record["error"] = error
            records.append(record)
        with write_transaction(self.engine) as session:
            # First, so that the row is ours, not one made for the events.
            record_send(
                session,
                msgid=msgid,
                provider=PROVIDER,
                channelkey=self.app_key,
                sendno=None,
                params=params,
                request=body,  # the secret signs headers only: the body holds none
                code=part.code,
                message=part.message,
                send_id=outcome.send_id,
                part=part.number,
                sent_at=now,
            )
            result = record_batch(
                session=session, channelkey=self.app_key, records=records, received_at=now
            )
        if result.quarantined:
            logger.warning(
                "RongCloud send %s part %d: %d recipient events could not be stored "
                "(kept in quarantine)",
                outcome.send_id,
                part.number,
                result.quarantined,
            )


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``umstrack rongcloud-send``; sets ``func`` to :func:`run`."""
    parser.add_argument(
        "file", help="the publish_template.json body as JSON (- for standard input)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the content each recipient would get; send nothing",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``umstrack rongcloud-send``: 0 when sent, 2 on invalid input or configuration,
    1 when RongCloud refuses or cannot be reached. The result goes to stdout as JSON."""
    settings = Settings.from_env()  # a ConfigError is the command line's to report
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
        message = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"umstrack: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        if args.dry_run:
            # Needs no credentials and no database: it only checks and renders.
            print(json.dumps(preview_template(message), ensure_ascii=False, indent=2))
            return 0
        validate_template(message, max_recipients=None)  # before touching the database
    except InvalidMessageError as exc:
        print(f"umstrack: invalid message: {exc}", file=sys.stderr)
        return 2
    if not settings.rongcloud_app_key or not settings.rongcloud_app_secret:
        print(
            "umstrack: cannot send: set RONGCLOUD_APP_KEY and RONGCLOUD_APP_SECRET",
            file=sys.stderr,
        )
        return 2
    migrate(settings.database_url)  # sends are recorded in the receiver's database
    engine = make_engine(settings)
    try:
        sender = RongCloudSender.from_settings(settings, engine=engine)
        outcome = sender.send(message, progress=_show_progress)
    except SendFailedError as exc:
        print(json.dumps(exc.outcome.as_dict(), ensure_ascii=False, indent=2))
        print(f"umstrack: send failed: {exc.error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    return 0


def _show_progress(text: str) -> None:
    print(f"umstrack: {text}", file=sys.stderr, flush=True)
