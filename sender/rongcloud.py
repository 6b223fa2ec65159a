"""RongCloud template private messages: validate, split, rate-limit, send and record them.

One *send* is what a caller asks for: the body of RongCloud's "send private template
message" API (``POST /message/private/publish_template.json``) for any number of
recipients. It is validated whole before anything goes out, then cut into *parts* of
at most 1000 recipients, the requests RongCloud takes. Every request is signed, held
to RongCloud's rate limit (6000 recipients a minute, shared by all threads of the
process), and recorded in the receiver's database when RongCloud answers: one
``message`` row per part, under an id of ours (``rc:<send_id>:<part>``), and one event
per recipient, ``submitted`` or ``submit_failed``. RongCloud sends no delivery
callbacks for server-sent messages, so those events are all the status there is.

Facts come from the seed page (发送单聊模板消息) and providers.md section 5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import secrets
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from sqlalchemy import Engine

from receiver.config import Settings
from receiver.db import make_engine, migrate, write_transaction
from receiver.intake import record_batch
from receiver.status import RONGCLOUD_SENDER
from receiver.storage import TRACKING_PARAM, record_send

from .http import ProviderClient
from .sending import ConfigurationError
from .ums_client import DEFAULT_TIMEOUT, RetryPolicy, SenderError, never_sent

logger = logging.getLogger(__name__)

PATH: Final = "/message/private/publish_template.json"
PROVIDER: Final = "rongcloud"
MAX_RECIPIENTS: Final = 1000
MAX_CONTENT_BYTES: Final = 128 * 1024
MAX_OBJECT_NAME_CHARS: Final = 32
MAX_USER_ID_CHARS: Final = 64  # fromUserId (the Java SDK's verify.json)
# The seed: at most 6000 messages a minute, one request to 1000 recipients counting 1000.
RATE_LIMIT: Final = 6000
RATE_PERIOD: Final = 60.0

# RongCloud codes (providers.md 5.4).
SUCCESS: Final = 200
PARAMETER_ERROR: Final = 1002
SIGNATURE_ERROR: Final = 1004
TOO_LONG: Final = 1005
RATE_LIMITED: Final = 1008

# The message types RongCloud's own SDKs define (the Web IM SDK's registry of RC:
# types). Only these may start with "RC:"; any other RC: name is taken to be a custom
# type misnamed, which RongCloud forbids (it would clash with its own types).
BUILTIN_OBJECT_NAMES: Final = frozenset(
    {
        # content messages
        "RC:TxtMsg", "RC:ImgMsg", "RC:VcMsg", "RC:HQVCMsg", "RC:ImgTextMsg", "RC:FileMsg",
        "RC:LBSMsg", "RC:SightMsg", "RC:GIFMsg", "RC:CombineMsg", "RC:ReferenceMsg",
        "RC:PSImgTxtMsg", "RC:PSMultiImgTxtMsg",
        # notifications and commands
        "RC:InfoNtf", "RC:ContactNtf", "RC:ProfileNtf", "RC:CmdNtf", "RC:GrpNtf", "RC:RcNtf",
        "RC:CmdMsg", "RC:RcCmd", "RC:ReadNtf", "RC:TypSts", "RC:SRSMsg", "RC:RRReqMsg",
        "RC:RRRspMsg", "RC:chrmKVNotiMsg", "RC:MsgExMsg",
    }
)  # fmt: skip

# A placeholder: braces around a name with no space, brace, quote, backslash, colon or
# comma, so that JSON's own braces ({"content": ...}) are never taken for one.
_PLACEHOLDER = re.compile(r"\{[^\s{}\"'\\:,]+\}")
_EXCERPT_CHARS = 200

# Arrays of one string per toUserId, cut along with it when a send is split.
_PER_RECIPIENT = ("pushContent", "pushData", "pushExt")
_BINARY_FLAGS = ("isIncludeSender", "verifyBlacklist", "contentAvailable",
                 "needReadReceipt", "isCounted")  # fmt: skip
_BOOL_FLAGS = ("disablePush", "disableUpdateLastMsg")
_REQUIRED = ("fromUserId", "toUserId", "objectName", "content", "values", "pushContent")
_FIELDS = frozenset(
    (*_REQUIRED, "pushData", "pushExt", *_BINARY_FLAGS, *_BOOL_FLAGS, "busChannel", "msgRandom")
)


# --------------------------------------------------------------------------- validation


class TemplateMessageError(ValueError):
    """A template message that must not be sent: the field at fault, why, and the code
    RongCloud would answer (or, for an unfilled placeholder, 1002 where it would not)."""

    def __init__(self, field: str, reason: str, code: int = PARAMETER_ERROR) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def placeholders(text: str) -> set[str]:
    """The placeholders (``{name}``) a text uses."""
    return set(_PLACEHOLDER.findall(text))


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by its value; one pass, so a value that
    itself looks like a placeholder is left as it is."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(0), m.group(0)), text)


def validate_template(message: Any, *, max_recipients: int | None = MAX_RECIPIENTS) -> None:
    """Raise TemplateMessageError unless ``message`` is a body RongCloud takes and every
    recipient gets fully rendered content; ``max_recipients=None`` checks a whole send
    before it is split."""
    if not isinstance(message, Mapping):
        raise TemplateMessageError("message", "must be a JSON object")
    for key in message:
        if key not in _FIELDS:
            raise TemplateMessageError(str(key), "is not a field of publish_template.json")
    for key in _REQUIRED:
        if key not in message:
            raise TemplateMessageError(key, "is required")
    _check_user_id(message["fromUserId"], "fromUserId")
    recipients = _check_recipients(message["toUserId"], max_recipients)
    _check_object_name(message["objectName"])
    content = message["content"]
    if not isinstance(content, str) or not content:
        raise TemplateMessageError("content", "must be a non-empty string (the message JSON)")
    _check_size(content, "content")
    values = _per_recipient(message, "values", recipients)
    per_recipient = {
        name: _per_recipient(message, name, recipients)
        for name in _PER_RECIPIENT
        if name in message
    }
    for name in _BINARY_FLAGS:
        if name in message and (not _is_int(message[name]) or message[name] not in (0, 1)):
            raise TemplateMessageError(name, "must be 0 or 1")
    for name in _BOOL_FLAGS:
        if name in message and not isinstance(message[name], bool):
            raise TemplateMessageError(name, "must be true or false")
    if "busChannel" in message and not isinstance(message["busChannel"], str):
        raise TemplateMessageError("busChannel", "must be a string")
    if "msgRandom" in message and not _is_int(message["msgRandom"]):
        raise TemplateMessageError("msgRandom", "must be an integer")

    used_in_content = placeholders(content)
    for i, user in enumerate(recipients):
        own = values[i]
        # Only pushContent and pushData are templates (the seed); pushExt is sent as is.
        needed = {(p, "content") for p in used_in_content}
        for name in ("pushContent", "pushData"):
            if name in per_recipient:
                needed |= {(p, f"{name}[{i}]") for p in placeholders(per_recipient[name][i])}
        missing = sorted((p, where) for p, where in needed if p not in own)
        if missing:
            placeholder, where = missing[0]
            raise TemplateMessageError(
                f"values[{i}]",
                f"no value for {placeholder} (used in {where}): toUserId {user!r} would "
                f"see the text {placeholder} itself",
            )
        rendered = render(content, own)
        _check_size(rendered, f"content rendered for toUserId[{i}]")
        try:
            parsed = json.loads(rendered)
        except ValueError as exc:
            parsed, problem = None, f"{exc}"
        else:
            problem = "not an object"
        if not isinstance(parsed, dict):
            raise TemplateMessageError(
                "content",
                f"rendered for toUserId[{i}] ({user!r}) it is not a JSON object ({problem}); "
                f"a value with a quote or backslash needs JSON escaping",
            )


def split_template(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The requests of a send: at most 1000 recipients each, every per-recipient array
    cut along with ``toUserId``; other fields repeated in each."""
    recipients = list(message["toUserId"])
    parts = []
    for start in range(0, len(recipients), MAX_RECIPIENTS):
        end = start + MAX_RECIPIENTS
        part = dict(message)
        for name in ("toUserId", "values", *_PER_RECIPIENT):
            if name in message:
                part[name] = list(message[name][start:end])
        parts.append(part)
    return parts


def preview_template(message: Any) -> dict[str, Any]:
    """What a send would do, checked but not sent: its requests and, per recipient, the
    content, push text and push data as RongCloud would render them."""
    validate_template(message, max_recipients=None)
    parts = split_template(message)
    rendered = []
    for i, user in enumerate(message["toUserId"]):
        own = message["values"][i]
        entry: dict[str, Any] = {
            "toUserId": user,
            "content": render(message["content"], own),
            "pushContent": render(message["pushContent"][i], own),
        }
        if "pushData" in message:
            entry["pushData"] = render(message["pushData"][i], own)
        rendered.append(entry)
    return {
        "dry_run": True,
        "recipients": len(message["toUserId"]),
        "requests": [{"part": n, "recipients": len(p["toUserId"])} for n, p in enumerate(parts)],
        "rendered": rendered,
    }


def _check_user_id(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise TemplateMessageError(field, "must be a non-empty string")
    if len(value) > MAX_USER_ID_CHARS:
        raise TemplateMessageError(field, f"is over {MAX_USER_ID_CHARS} characters", TOO_LONG)


def _check_recipients(value: Any, max_recipients: int | None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise TemplateMessageError("toUserId", "must be a non-empty array of user ids")
    if max_recipients is not None and len(value) > max_recipients:
        raise TemplateMessageError(
            "toUserId", f"has {len(value)} recipients; at most {max_recipients} per request"
        )
    seen: dict[str, int] = {}
    for i, user in enumerate(value):
        if not isinstance(user, str) or not user:
            raise TemplateMessageError(f"toUserId[{i}]", "must be a non-empty string")
        if user in seen:
            # Each recipient is tracked once per message: a second entry could not be told apart.
            raise TemplateMessageError(
                f"toUserId[{i}]", f"{user!r} is already toUserId[{seen[user]}]"
            )
        seen[user] = i
    return value


def _check_object_name(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise TemplateMessageError("objectName", "must be a non-empty string such as RC:TxtMsg")
    if len(value) > MAX_OBJECT_NAME_CHARS:
        raise TemplateMessageError(
            "objectName", f"is {len(value)} characters; at most {MAX_OBJECT_NAME_CHARS}", TOO_LONG
        )
    if value.startswith("RC:") and value not in BUILTIN_OBJECT_NAMES:
        raise TemplateMessageError(
            "objectName",
            f"{value!r} is no RongCloud built-in type, and a custom type may not start with 'RC:'",
        )


def _check_size(text: str, field: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise TemplateMessageError(
            field, f"is {size} bytes; at most {MAX_CONTENT_BYTES} (128 KB)", TOO_LONG
        )


def _per_recipient(message: Mapping[str, Any], name: str, recipients: list[str]) -> list[Any]:
    """A field with one entry per recipient: its list, after checking each entry."""
    value = message[name]
    if not isinstance(value, list):
        raise TemplateMessageError(name, "must be an array, one entry per toUserId")
    if len(value) != len(recipients):
        raise TemplateMessageError(
            name,
            f"has {len(value)} entries for {len(recipients)} recipients: one per toUserId, "
            f"in the same order",
        )
    for i, entry in enumerate(value):
        if name == "values":
            _check_values(entry, f"values[{i}]")
        elif not isinstance(entry, str):
            raise TemplateMessageError(f"{name}[{i}]", "must be a string")
    return value


def _check_values(entry: Any, field: str) -> None:
    if not isinstance(entry, dict):
        raise TemplateMessageError(field, 'must be an object such as {"{name}": "Tom"}')
    for key, value in entry.items():
        if not _PLACEHOLDER.fullmatch(key):
            raise TemplateMessageError(
                field, f"key {key!r} is not a placeholder: write it as used, e.g. '{{{key}}}'"
            )
        if not isinstance(value, str):
            raise TemplateMessageError(f"{field}[{key!r}]", "must be a string")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --------------------------------------------------------------------------- rate limit


class RateLimiter:
    """At most ``limit`` units in any ``period`` seconds; callers wait for capacity.

    Thread-safe. Each caller reserves its start time under the lock, then sleeps
    outside it; reservations never go back in time, so callers are served in order and
    a large caller is not starved by small ones.
    """

    def __init__(
        self,
        limit: int = RATE_LIMIT,
        period: float = RATE_PERIOD,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0 or period <= 0:
            raise ValueError("limit and period must be positive")
        self.limit = limit
        self.period = float(period)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._taken: deque[tuple[float, int]] = deque()  # (start, units), by start

    def acquire(self, units: int, *, on_wait: Callable[[float], None] | None = None) -> float:
        """Wait until ``units`` fit in the window, take them, and return the clock time
        they were taken at; ``on_wait(seconds)`` is called before any wait."""
        if units > self.limit:
            raise ValueError(f"{units} units can never fit a limit of {self.limit}")
        if units <= 0:
            return self._clock()
        with self._lock:
            now = self._clock()
            while self._taken and self._taken[0][0] + self.period <= now:
                self._taken.popleft()
            start = max(now, self._taken[-1][0]) if self._taken else now
            in_window = sum(n for _, n in self._taken)
            # Units taken at s count against [s, s + period): drop the oldest until the
            # rest, and this request, fit in the window ending at start.
            for taken_at, n in self._taken:
                if in_window + units <= self.limit:
                    break
                start = max(start, taken_at + self.period)
                in_window -= n
            self._taken.append((start, units))
        wait = start - now
        if wait > 0:
            logger.info(
                "RongCloud rate limit (%d recipients in %.0f s): waiting %.1f s to send to %d",
                self.limit,
                self.period,
                wait,
                units,
            )
            if on_wait is not None:
                on_wait(wait)
            self._sleep(wait)
        return start


_LIMITERS: dict[str, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(app_key: str) -> RateLimiter:
    """The process-wide limiter of one RongCloud app, shared by all its clients and threads."""
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(app_key)
        if limiter is None:
            limiter = _LIMITERS[app_key] = RateLimiter()
        return limiter


# --------------------------------------------------------------------------- the client


class RongCloudError(SenderError):
    """RongCloud answered, but not with success; code is None when the answer was no
    RongCloud envelope."""

    def __init__(
        self, code: int | None, message: str, http_status: int | None, base_url: str | None
    ) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        self.base_url = base_url
        super().__init__(f"RongCloud error {code} (HTTP {http_status}): {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.message, self.http_status, self.base_url))


class RongCloudNotSent(SenderError):
    """No connection to RongCloud could be made (primary or backup): nothing was sent."""

    def __init__(self, reason: str, tried: Sequence[str]) -> None:
        self.reason = reason
        self.tried = list(tried)
        super().__init__(f"never sent: could not connect to {', '.join(self.tried)}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.tried))


class RongCloudUnknownOutcome(SenderError):
    """The request may have reached RongCloud, but no answer came: it may have been sent."""

    def __init__(self, reason: str, base_url: str) -> None:
        self.reason = reason
        self.base_url = base_url
        super().__init__(
            f"outcome unknown, the message may or may not have been sent ({base_url}): {reason}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.base_url))


@dataclass(frozen=True)
class PublishResult:
    """A request RongCloud accepted: where, and the message UIDs it gave, if any."""

    code: int
    base_url: str
    request_id: str
    answer: dict[str, Any]

    @property
    def message_uids(self) -> list[Any]:
        """``messageUIDs`` ([{userId, messageUID}]) or ``messageUID``, as RongCloud gave them."""
        uids = self.answer.get("messageUIDs")
        if isinstance(uids, list):
            return uids
        uid = self.answer.get("messageUID")
        return [] if uid is None else [uid]


def signature(app_secret: str, nonce: str, timestamp: str) -> str:
    """RongCloud's request signature: lowercase hex SHA-1 of secret + nonce + timestamp."""
    return hashlib.sha1((app_secret + nonce + timestamp).encode("utf-8")).hexdigest()


def signed_headers(app_key: str, app_secret: str, nonce: str, timestamp: str) -> dict[str, str]:
    """The four headers that authenticate one request."""
    return {
        "App-Key": app_key,
        "Nonce": nonce,
        "Timestamp": timestamp,
        "Signature": signature(app_secret, nonce, timestamp),
    }


def _new_nonce() -> str:
    return secrets.token_hex(8)  # 16 characters: the 2021 docs allow at most 18


@dataclass(frozen=True)
class _Answer:
    status: int
    body: dict[str, Any] | None  # the JSON object, None when the answer was not one
    raw: bytes
    base_url: str


class RongCloudClient(ProviderClient):
    """One RongCloud app: signed requests, one Session, explicit timeouts, a backup
    base URL and the app's rate limit; use as a context manager."""

    def __init__(
        self,
        app_key: str,
        app_secret: str,
        base_url: str,
        *,
        backup_base_url: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
        nonce: Callable[[], str] = _new_nonce,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError("app_key and app_secret must be non-empty")
        for url in (base_url, backup_base_url):
            parts = urlsplit(url or "http://x")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"base URLs must be http(s) URLs, got {url!r}")
        connect_timeout, read_timeout = timeout
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive (connect, read) seconds")
        self.app_key = app_key
        self._app_secret = app_secret
        self.base_url = base_url.rstrip("/")
        self.backup_base_url = backup_base_url.rstrip("/") if backup_base_url else None
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.retry = retry or RetryPolicy()
        self.limiter = limiter if limiter is not None else limiter_for(app_key)
        self._sleep = sleep
        self._nonce = nonce
        self._wall_clock = wall_clock
        super().__init__()

    def publish_template(
        self, message: Mapping[str, Any], *, on_wait: Callable[[float], None] | None = None
    ) -> PublishResult:
        """Send one request (at most 1000 recipients) after validating it and waiting for
        rate-limit capacity; raises RongCloudError, RongCloudNotSent or
        RongCloudUnknownOutcome."""
        self._check_open()
        validate_template(message)
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.limiter.acquire(len(message["toUserId"]), on_wait=on_wait)
        retries = 0
        while True:
            answer, request_id = self._post_with_failover(data)
            code = answer.body.get("code") if answer.body is not None else None
            if code != RATE_LIMITED or retries >= self.retry.max_rate_limit_retries:
                break
            # Refused, so not sent: safe to try again once the server's window moves on.
            delay = self.retry.delay(retries)
            retries += 1
            logger.warning(
                "RongCloud %s: rate limited (%d); retry %d in %.1f s",
                answer.base_url,
                RATE_LIMITED,
                retries,
                delay,
            )
            if on_wait is not None:
                on_wait(delay)
            self._sleep(delay)
        result = self._check(answer, request_id)
        logger.info(
            "RongCloud accepted %s for %d recipients at %s (request %s)",
            PATH,
            len(message["toUserId"]),
            answer.base_url,
            request_id,
        )
        return result

    def _post_with_failover(self, data: bytes) -> tuple[_Answer, str]:
        """POST to the primary base URL; on a failed connection or a 5xx answer, once to
        the backup. Returns the answer to act on and the request id sent."""
        request_id = str(uuid.uuid4())
        bases = [self.base_url] + ([self.backup_base_url] if self.backup_base_url else [])
        first: _Answer | None = None
        tried: list[str] = []
        for index, base in enumerate(bases):
            last = index == len(bases) - 1
            try:
                answer = self._attempt(base, data, request_id)
            except requests.RequestException as exc:
                # _attempt lets through only failures that provably sent nothing.
                tried.append(base)
                if not last:
                    logger.warning(
                        "RongCloud %s: could not connect (%s); trying the backup %s",
                        base,
                        type(exc).__name__,
                        bases[-1],
                    )
                    continue
                if first is not None:
                    return first, request_id  # the primary's 5xx is the story to tell
                raise RongCloudNotSent(f"{type(exc).__name__}: {exc}", tried) from exc
            if answer.status >= 500 and not last:
                logger.warning(
                    "RongCloud %s: answered HTTP %d; trying the backup %s",
                    base,
                    answer.status,
                    bases[-1],
                )
                first = answer
                continue
            return answer, request_id
        raise AssertionError("unreachable: the last base URL always returns or raises")

    def _attempt(self, base: str, data: bytes, request_id: str) -> _Answer:
        """One signed POST. A failure that provably sent nothing is raised as is (to fail
        over); any other transport failure as RongCloudUnknownOutcome."""
        # A fresh nonce and timestamp for every attempt: each is its own request.
        headers = signed_headers(
            self.app_key, self._app_secret, self._nonce(), str(int(self._wall_clock()))
        )
        headers["Content-Type"] = "application/json"
        headers["X-Request-Id"] = request_id
        try:
            response = self._session.post(
                base + PATH, data=data, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            if never_sent(exc):
                raise
            logger.warning("RongCloud %s: no answer after sending (%r)", base, exc)
            raise RongCloudUnknownOutcome(f"{type(exc).__name__}: {exc}", base) from exc
        with response:
            status, content = response.status_code, response.content
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not _is_int(body.get("code")):
            body = None
        return _Answer(status, body, content, base)

    @staticmethod
    def _check(answer: _Answer, request_id: str) -> PublishResult:
        """The result of a success answer; RongCloudError for anything else."""
        if answer.body is None:
            raise RongCloudError(
                None,
                f"answered HTTP {answer.status} without a JSON envelope: {_excerpt(answer.raw)}",
                answer.status,
                answer.base_url,
            )
        code = answer.body["code"]
        message = str(answer.body.get("errorMessage") or answer.body.get("msg") or "")
        if code != SUCCESS:
            raise RongCloudError(code, message, answer.status, answer.base_url)
        if not 200 <= answer.status < 300:
            detail = f"answered code 200 with HTTP {answer.status}: {message}"
            raise RongCloudError(None, detail, answer.status, answer.base_url)
        return PublishResult(code, answer.base_url, request_id, answer.body)


def _excerpt(content: bytes) -> str:
    text = " ".join(content.decode("utf-8", errors="replace").split())
    if len(text) > _EXCERPT_CHARS:
        text = text[:_EXCERPT_CHARS] + "…"
    return repr(text)


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


class TemplateSendFailed(Exception):
    """A request of a send failed (and was recorded); ``outcome`` says which went out."""

    def __init__(self, error: SenderError, outcome: TemplateOutcome) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome


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
        """A sender for the RongCloud app of ``settings``; ConfigurationError without one."""
        if not settings.rongcloud_app_key or not settings.rongcloud_app_secret:
            raise ConfigurationError(
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
        """Send to every recipient and record each request; raises TemplateMessageError
        before anything is sent, and TemplateSendFailed (after recording the failed
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
                except SenderError as exc:
                    outcome.parts.append(self._record_failure(outcome, number, body, exc))
                    outcome.parts += [
                        TemplatePart(n, len(b["toUserId"]), "not_tried")
                        for n, b in enumerate(bodies[number + 1 :], start=number + 1)
                    ]
                    logger.warning("RongCloud send %s %s failed: %s", outcome.send_id, label, exc)
                    raise TemplateSendFailed(exc, outcome) from exc
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
        self, outcome: TemplateOutcome, number: int, body: dict[str, Any], error: SenderError
    ) -> TemplatePart:
        code, base_url = None, getattr(error, "base_url", None)
        if isinstance(error, RongCloudError):
            code, text = error.code, error.message or str(error)
        elif isinstance(error, RongCloudUnknownOutcome):
            text = f"outcome unknown (the message may have been sent): {error.reason}"
        elif isinstance(error, RongCloudNotSent):
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
    except TemplateMessageError as exc:
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
    except TemplateSendFailed as exc:
        print(json.dumps(exc.outcome.as_dict(), ensure_ascii=False, indent=2))
        print(f"umstrack: send failed: {exc.error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
    return 0


def _show_progress(text: str) -> None:
    print(f"umstrack: {text}", file=sys.stderr, flush=True)

