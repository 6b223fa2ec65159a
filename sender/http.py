"""What every provider client shares: one HTTP session that never retries by itself,
explicit timeouts, the safe-retry policy, and HTTP Basic credentials."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.util.retry import Retry

from .values import is_int

log = logging.getLogger(__name__)

# (connect, read) in seconds; connect slightly above a multiple of 3 (TCP SYN retransmit).
DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 15.0)


def basic_auth_header(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic auth: ``Basic base64(user:password)``."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def basic_credentials(authorization: str | None) -> bytes | None:
    """The decoded ``user:password`` bytes of a Basic ``Authorization`` value, or None
    when the header is missing, of another scheme, or not base64."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and exponential backoff (base_delay * 2**n, at most max_delay) for the
    retries that are safe: a rate limit, and a request that provably never left."""

    max_rate_limit_retries: int = 3
    max_connect_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (0 for the first)."""
        return float(min(self.max_delay, self.base_delay * 2**retry_number))

    def longest(self, timeout: tuple[float, float]) -> float:
        """Seconds one request can take at most, every retry and wait included."""
        retries = self.max_rate_limit_retries + self.max_connect_retries
        waits = sum(self.delay(n) for n in range(retries))
        return (retries + 1) * sum(timeout) + waits


def never_sent(exc: requests.RequestException) -> bool:
    """True only when the exception proves no byte of the request reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    # Look only at what requests and urllib3 wrapped on purpose (args[0], .reason,
    # .original_error), never at __context__: that chain can lead to unrelated
    # exceptions, e.g. one the caller was handling when it called us.
    cause: object = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, Urllib3ProxyError):
        cause = cause.original_error  # failed to reach the proxy itself
    # NewConnectionError and NameResolutionError are ConnectTimeoutError subclasses:
    # the TCP connection was never established. A reset, RemoteDisconnected or read
    # timeout arrives wrapped as ProtocolError / ReadTimeoutError and is not matched.
    return isinstance(cause, ConnectTimeoutError)


@dataclass(frozen=True)
class Answer:
    """A provider's answer: the HTTP status, and the body as the JSON object both
    providers answer with (``{"code": <int>, ...}``), or None when it is not one."""

    status: int
    envelope: dict[str, Any] | None
    raw: bytes


class ProviderClient:
    """Base of the provider clients: ``self._session`` for their calls; a context
    manager that closes it."""

    timeout: tuple[float, float] = DEFAULT_TIMEOUT

    def __init__(self) -> None:
        self._closed = False
        self._session = requests.Session()
        # Retries are decided by the client, not by urllib3: Retry(0, read=False) turns
        # every failure into an exception on the first attempt.
        adapter = HTTPAdapter(max_retries=Retry(total=0, read=False))
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update({"Accept": "application/json", "User-Agent": "umstrack"})

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session; the client cannot be used afterwards."""
        self._closed = True
        self._session.close()

    def _post_once(
        self,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
        unknown: Callable[[requests.RequestException], Exception],
    ) -> Answer | requests.RequestException:
        """One POST, no redirects, no retries. A failure that provably sent nothing is
        returned, for the caller to retry or fail over; any other transport failure
        raises ``unknown(exc)``: the request may have arrived."""
        try:
            response = self._session.post(
                url, data=data, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            if never_sent(exc):
                return exc
            log.warning("%s: no answer after sending (%r)", url, exc)
            raise unknown(exc) from exc
        with response:
            status, content = response.status_code, response.content
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        envelope = body if isinstance(body, dict) and is_int(body.get("code")) else None
        return Answer(status, envelope, content)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")
