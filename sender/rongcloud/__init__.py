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

import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import requests

from ..errors import InvalidMessageError, NotSentError, ProviderRefusedError, UnknownOutcomeError
from ..http import DEFAULT_TIMEOUT, ProviderClient, RetryPolicy, never_sent
from ..values import excerpt, is_int

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


def _invalid(field: str, reason: str, code: int = PARAMETER_ERROR) -> InvalidMessageError:
    """A broken rule of publish_template.json: the field, why, and RongCloud's code (or,
    for an unfilled placeholder, 1002 where RongCloud would not refuse)."""
    return InvalidMessageError(field, reason, code, provider=PROVIDER)


def placeholders(text: str) -> set[str]:
    """The placeholders (``{name}``) a text uses."""
    return set(_PLACEHOLDER.findall(text))


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by its value; one pass, so a value that
    itself looks like a placeholder is left as it is."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(0), m.group(0)), text)


def validate_template(message: Any, *, max_recipients: int | None = MAX_RECIPIENTS) -> None:
    """Raise InvalidMessageError unless ``message`` is a body RongCloud takes and every
    recipient gets fully rendered content; ``max_recipients=None`` checks a whole send
    before it is split."""
    if not isinstance(message, Mapping):
        raise _invalid("message", "must be a JSON object")
    for key in message:
        if key not in _FIELDS:
            raise _invalid(str(key), "is not a field of publish_template.json")
    for key in _REQUIRED:
        if key not in message:
            raise _invalid(key, "is required")
    _check_user_id(message["fromUserId"], "fromUserId")
    recipients = _check_recipients(message["toUserId"], max_recipients)
    _check_object_name(message["objectName"])
    content = message["content"]
    if not isinstance(content, str) or not content:
        raise _invalid("content", "must be a non-empty string (the message JSON)")
    _check_size(content, "content")
    values = _per_recipient(message, "values", recipients)
    per_recipient = {
        name: _per_recipient(message, name, recipients)
        for name in _PER_RECIPIENT
        if name in message
    }
    for name in _BINARY_FLAGS:
        if name in message and (not is_int(message[name]) or message[name] not in (0, 1)):
            raise _invalid(name, "must be 0 or 1")
    for name in _BOOL_FLAGS:
        if name in message and not isinstance(message[name], bool):
            raise _invalid(name, "must be true or false")
    if "busChannel" in message and not isinstance(message["busChannel"], str):
        raise _invalid("busChannel", "must be a string")
    if "msgRandom" in message and not is_int(message["msgRandom"]):
        raise _invalid("msgRandom", "must be an integer")

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
            raise _invalid(
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
            raise _invalid(
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
        raise _invalid(field, "must be a non-empty string")
    if len(value) > MAX_USER_ID_CHARS:
        raise _invalid(field, f"is over {MAX_USER_ID_CHARS} characters", TOO_LONG)


def _check_recipients(value: Any, max_recipients: int | None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _invalid("toUserId", "must be a non-empty array of user ids")
    if max_recipients is not None and len(value) > max_recipients:
        raise _invalid(
            "toUserId", f"has {len(value)} recipients; at most {max_recipients} per request"
        )
    seen: dict[str, int] = {}
    for i, user in enumerate(value):
        if not isinstance(user, str) or not user:
            raise _invalid(f"toUserId[{i}]", "must be a non-empty string")
        if user in seen:
            # Each recipient is tracked once per message: a second entry could not be told apart.
            raise _invalid(f"toUserId[{i}]", f"{user!r} is already toUserId[{seen[user]}]")
        seen[user] = i
    return value


def _check_object_name(value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise _invalid("objectName", "must be a non-empty string such as RC:TxtMsg")
    if len(value) > MAX_OBJECT_NAME_CHARS:
        raise _invalid(
            "objectName", f"is {len(value)} characters; at most {MAX_OBJECT_NAME_CHARS}", TOO_LONG
        )
    if value.startswith("RC:") and value not in BUILTIN_OBJECT_NAMES:
        raise _invalid(
            "objectName",
            f"{value!r} is no RongCloud built-in type, and a custom type may not start with 'RC:'",
        )


def _check_size(text: str, field: str) -> None:
    size = len(text.encode("utf-8"))
    if size > MAX_CONTENT_BYTES:
        raise _invalid(field, f"is {size} bytes; at most {MAX_CONTENT_BYTES} (128 KB)", TOO_LONG)


def _per_recipient(message: Mapping[str, Any], name: str, recipients: list[str]) -> list[Any]:
    """A field with one entry per recipient: its list, after checking each entry."""
    value = message[name]
    if not isinstance(value, list):
        raise _invalid(name, "must be an array, one entry per toUserId")
    if len(value) != len(recipients):
        raise _invalid(
            name,
            f"has {len(value)} entries for {len(recipients)} recipients: one per toUserId, "
            f"in the same order",
        )
    for i, entry in enumerate(value):
        if name == "values":
            _check_values(entry, f"values[{i}]")
        elif not isinstance(entry, str):
            raise _invalid(f"{name}[{i}]", "must be a string")
    return value


def _check_values(entry: Any, field: str) -> None:
    if not isinstance(entry, dict):
        raise _invalid(field, 'must be an object such as {"{name}": "Tom"}')
    for key, value in entry.items():
        if not _PLACEHOLDER.fullmatch(key):
            raise _invalid(
                field, f"key {key!r} is not a placeholder: write it as used, e.g. '{{{key}}}'"
            )
        if not isinstance(value, str):
            raise _invalid(f"{field}[{key!r}]", "must be a string")


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
        rate-limit capacity; raises ProviderRefusedError, NotSentError or
        UnknownOutcomeError."""
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
                raise NotSentError(
                    f"{type(exc).__name__}: {exc}", provider=PROVIDER, tried=tried
                ) from exc
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
        over); any other transport failure as UnknownOutcomeError."""
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
            raise UnknownOutcomeError(
                f"{type(exc).__name__}: {exc}", provider=PROVIDER, base_url=base
            ) from exc
        with response:
            status, content = response.status_code, response.content
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not is_int(body.get("code")):
            body = None
        return _Answer(status, body, content, base)

    @staticmethod
    def _check(answer: _Answer, request_id: str) -> PublishResult:
        """The result of a success answer; ProviderRefusedError for anything else."""
        if answer.body is None:
            raise ProviderRefusedError(
                None,
                f"answered HTTP {answer.status} without a JSON envelope: {excerpt(answer.raw)}",
                answer.status,
                provider=PROVIDER,
                base_url=answer.base_url,
            )
        code = answer.body["code"]
        message = str(answer.body.get("errorMessage") or answer.body.get("msg") or "")
        if code != SUCCESS:
            raise ProviderRefusedError(
                code, message, answer.status, provider=PROVIDER, base_url=answer.base_url
            )
        if not 200 <= answer.status < 300:
            detail = f"answered code 200 with HTTP {answer.status}: {message}"
            raise ProviderRefusedError(
                None, detail, answer.status, provider=PROVIDER, base_url=answer.base_url
            )
        return PublishResult(code, answer.base_url, request_id, answer.body)
