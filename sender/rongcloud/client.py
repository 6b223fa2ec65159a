"""The RongCloud server API client: signed requests to publish_template.json, held to
the app's rate limit, failed over to the backup domain once.

Signing (API 调用签名规则, API signature rules): every request carries ``App-Key``,
``Nonce`` (a random string of at most 18 characters), ``Timestamp`` and ``Signature`` =
lowercase hex SHA-1 of app secret + nonce + timestamp; RongCloud answers a bad one with
HTTP 401 and code 1004. The timestamp is whole seconds, as RongCloud's server SDKs
send it. Failover (rongcloud/server-sdk-go): when the primary domain cannot be reached
or answers 5xx, the request goes once to the backup domain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from ..errors import NotSentError, ProviderRefusedError, UnknownOutcomeError
from ..http import DEFAULT_TIMEOUT, ProviderClient, RetryPolicy
from ..values import excerpt, is_http_url
from .protocol import PATH, PROVIDER, RATE_LIMITED, SUCCESS
from .ratelimit import RateLimiter, limiter_for
from .rules import validate_template

log = logging.getLogger(__name__)


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
    return secrets.token_hex(8)  # 16 characters, within RongCloud's MAX_NONCE_CHARS


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
            if url and not is_http_url(url):
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
            log.warning(
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
        log.info(
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
                    log.warning(
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
                log.warning(
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

        def unknown(exc: requests.RequestException) -> Exception:
            reason = f"{type(exc).__name__}: {exc}"
            return UnknownOutcomeError(reason, provider=PROVIDER, base_url=base)

        answer = self._post_once(base + PATH, data, headers, unknown)
        if isinstance(answer, requests.RequestException):
            raise answer  # sent nothing: the caller fails over
        return _Answer(answer.status, answer.envelope, answer.raw, base)

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
