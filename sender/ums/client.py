"""Jiguang UMS REST client: the four send endpoints and withdraw, every send tracked.

From UMS's pages 普通消息发送 v1 (Ordinary message sending v1), 模板消息 (Template
messages), 撤回消息 (Withdraw a message) and 业务返回码 (Business return codes):

- Endpoints: ``POST /v1/sent``, ``/v1/broadcast``, ``/v1/template/sent`` and
  ``/v1/template/broadcast`` take a JSON message; ``POST /v1/retract/{msgid}``
  withdraws a message sent in the last 24 hours, whose per-target outcome arrives later
  as status callbacks 7 and 8.
- Every call carries ``Authorization: Basic base64(channelkey:mastersecret)``, so a
  channelkey holds no ``:``.
- Every answer is a JSON envelope ``{"code", "message"}``, code 0 meaning success; a
  send's success adds its ``msgid`` and echoes ``option.sendno`` as ``sendno``. Any
  other code raises :class:`ProviderRefusedError` with it; an answer without the
  envelope raises it with code None.
- Two failures are retried, with the exponential backoff of
  :class:`sender.http.RetryPolicy` and up to its bounds: 1015030 (API rate limit
  exceeded), since UMS took nothing, and a request that provably never reached UMS
  (connection refused, connect timeout), which ends in :class:`NotSentError`.
- Nothing that may have reached UMS is sent again: a read timeout or a connection lost
  after sending raises :class:`UnknownOutcomeError`, and a 5xx answer is not retried,
  so that a message never goes out twice.
- Each send gets a send id in ``callback.params`` (``TRACKING_PARAM``), which UMS
  returns in every status callback of the message, and ``callback.url``: the call's,
  the message's own, or the client's default.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import AuthBase

from ..errors import NotSentError, ProviderRefusedError, UnknownOutcomeError
from ..http import DEFAULT_TIMEOUT, ProviderClient, RetryPolicy, basic_auth_header
from ..values import excerpt, is_http_url
from .protocol import DEFAULT_API_BASE, RATE_LIMITED, RETRACT_PATH, TRACKING_PARAM, SendKind

log = logging.getLogger(__name__)

PROVIDER = "ums"
# Characters RFC 3986 allows unescaped in a path segment besides unreserved ones.
# ":" stays literal, as in the UMS docs' example; "/", "?", "#", "%" and spaces are escaped.
_PATH_SEGMENT_SAFE = ":@!$&'()*+,;="


@dataclass(frozen=True)
class SendResult:
    """A message UMS accepted; body is the JSON object that was sent, as sent."""

    msgid: str
    sendno: str | None
    code: int
    message: str
    send_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class RetractResult:
    """A withdraw UMS accepted (the per-target outcome arrives later as callbacks 7 and 8)."""

    msgid: str
    code: int
    message: str


class _BasicAuth(AuthBase):
    """Sets a precomputed Basic header, so that a ~/.netrc entry can never replace it."""

    def __init__(self, channelkey: str, mastersecret: str) -> None:
        self.header = basic_auth_header(channelkey, mastersecret)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.header
        return request


class UmsClient(ProviderClient):
    """One UMS channel: Basic auth, one Session, explicit timeouts; use as a context manager."""

    def __init__(
        self,
        channelkey: str,
        mastersecret: str,
        base_url: str = DEFAULT_API_BASE,
        *,
        callback_url: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not channelkey or ":" in channelkey:
            raise ValueError("channelkey must be non-empty and contain no ':'")
        if not mastersecret:
            raise ValueError("mastersecret must be non-empty")
        if not is_http_url(base_url):
            # Caught here: requests would raise it per call, where it would read as a
            # transport failure of unknown outcome.
            raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
        connect_timeout, read_timeout = timeout
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ValueError("timeouts must be positive (connect, read) seconds")
        self.channelkey = channelkey
        self.base_url = base_url.rstrip("/")
        self.callback_url = callback_url
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        super().__init__()
        self._session.auth = _BasicAuth(channelkey, mastersecret)

    def send(
        self,
        message: Mapping[str, Any],
        *,
        send_id: str | None = None,
        callback_url: str | None = None,
    ) -> SendResult:
        """Send an ordinary message to its aud_* targets (POST /v1/sent)."""
        return self._send(SendKind.SENT.path, message, send_id, callback_url)

    def broadcast(
        self,
        message: Mapping[str, Any],
        *,
        send_id: str | None = None,
        callback_url: str | None = None,
    ) -> SendResult:
        """Broadcast an ordinary message (POST /v1/broadcast)."""
        return self._send(SendKind.BROADCAST.path, message, send_id, callback_url)

    def template_send(
        self,
        message: Mapping[str, Any],
        *,
        send_id: str | None = None,
        callback_url: str | None = None,
    ) -> SendResult:
        """Send a template message to its aud_* targets (POST /v1/template/sent)."""
        return self._send(SendKind.TEMPLATE_SENT.path, message, send_id, callback_url)

    def template_broadcast(
        self,
        message: Mapping[str, Any],
        *,
        send_id: str | None = None,
        callback_url: str | None = None,
    ) -> SendResult:
        """Broadcast a template message (POST /v1/template/broadcast)."""
        return self._send(SendKind.TEMPLATE_BROADCAST.path, message, send_id, callback_url)

    def retract(self, msgid: str) -> RetractResult:
        """Withdraw a message sent in the last 24 h (POST /v1/retract/{msgid})."""
        if not msgid or msgid in (".", ".."):
            raise ValueError(f"invalid msgid {msgid!r}")
        path = RETRACT_PATH + quote(msgid, safe=_PATH_SEGMENT_SAFE)
        status, answer = self._post(path, None, sendno=None, send_id=None)
        self._check(answer, status, sendno=None, send_id=None)
        log.info("UMS withdraw accepted: msgid=%s", msgid)
        return RetractResult(msgid=msgid, code=0, message=str(answer.get("message", "")))

    def build_body(
        self,
        message: Mapping[str, Any],
        send_id: str,
        callback_url: str | None = None,
    ) -> dict[str, Any]:
        """The JSON object a send would post: message plus callback url and tracking params
        (``callback_url``, else the message's own, else the client's)."""
        return tracked_body(message, send_id, callback_url, default_url=self.callback_url)

    def _send(
        self,
        path: str,
        message: Mapping[str, Any],
        send_id: str | None,
        callback_url: str | None,
    ) -> SendResult:
        if send_id is None:
            send_id = uuid.uuid4().hex
        elif not isinstance(send_id, str) or not send_id:
            raise ValueError("send_id must be a non-empty string")
        option = message.get("option")
        raw_sendno = option.get("sendno") if isinstance(option, Mapping) else None
        sendno = None if raw_sendno is None else str(raw_sendno)
        data = json.dumps(
            self.build_body(message, send_id, callback_url),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        status, answer = self._post(path, data, sendno=sendno, send_id=send_id)
        self._check(answer, status, sendno=sendno, send_id=send_id)
        msgid = answer.get("msgid")
        if not isinstance(msgid, str) or not msgid:
            # UMS said success; treating this as a failure could lead to a duplicate send.
            raise UnknownOutcomeError(
                provider=PROVIDER,
                sendno=sendno,
                send_id=send_id,
                reason=f"UMS answered success without a msgid: {answer}",
            )
        answered_sendno = answer.get("sendno")
        result = SendResult(
            msgid=msgid,
            sendno=sendno if answered_sendno in (None, "") else str(answered_sendno),
            code=0,
            message=str(answer.get("message", "")),
            send_id=send_id,
            body=json.loads(data),
        )
        log.info(
            "UMS accepted %s: msgid=%s sendno=%s send_id=%s", path, msgid, result.sendno, send_id
        )
        return result

    def _post(
        self, path: str, data: bytes | None, *, sendno: str | None, send_id: str | None
    ) -> tuple[int, dict[str, Any]]:
        """POST with the safe retries; returns (HTTP status, JSON object) of the final answer."""
        self._check_open()
        url = self.base_url + path
        rate_limit_retries = connect_retries = 0
        while True:
            outcome = self._attempt(url, data, sendno=sendno, send_id=send_id)
            if isinstance(outcome, requests.RequestException):
                if connect_retries >= self.retry.max_connect_retries:
                    attempts = connect_retries + 1
                    raise NotSentError(
                        str(outcome),
                        provider=PROVIDER,
                        attempts=attempts,
                        sendno=sendno,
                        send_id=send_id,
                    ) from outcome
                delay = self.retry.delay(connect_retries)
                connect_retries += 1
                log.warning(
                    "UMS %s: could not connect (%s); retry %d in %.1f s",
                    path,
                    type(outcome).__name__,
                    connect_retries,
                    delay,
                )
            else:
                status, answer = outcome
                if answer.get("code") != RATE_LIMITED:
                    return status, answer
                if rate_limit_retries >= self.retry.max_rate_limit_retries:
                    return status, answer  # _check raises the ProviderRefusedError
                delay = self.retry.delay(rate_limit_retries)
                rate_limit_retries += 1
                log.warning(
                    "UMS %s: rate limited (%d); retry %d in %.1f s",
                    path,
                    RATE_LIMITED,
                    rate_limit_retries,
                    delay,
                )
            self._sleep(delay)

    def _attempt(
        self, url: str, data: bytes | None, *, sendno: str | None, send_id: str | None
    ) -> tuple[int, dict[str, Any]] | requests.RequestException:
        """One POST; a provably unsent failure is returned (to retry), anything else raised."""
        headers = {"Content-Type": "application/json"} if data is not None else {}

        def unknown(exc: requests.RequestException) -> Exception:
            reason = f"{type(exc).__name__}: {exc}"
            return UnknownOutcomeError(reason, provider=PROVIDER, sendno=sendno, send_id=send_id)

        answer = self._post_once(url, data, headers, unknown)
        if isinstance(answer, requests.RequestException):
            return answer
        if answer.envelope is None:
            raise ProviderRefusedError(
                None,
                f"UMS answered HTTP {answer.status} without a JSON envelope: {excerpt(answer.raw)}",
                answer.status,
                provider=PROVIDER,
                sendno=sendno,
                send_id=send_id,
            )
        return answer.status, answer.envelope

    @staticmethod
    def _check(
        answer: dict[str, Any], status: int, *, sendno: str | None, send_id: str | None
    ) -> None:
        """Raise ProviderRefusedError unless the answer is a success envelope."""
        code = answer["code"]
        answered_sendno = answer.get("sendno")
        if answered_sendno not in (None, ""):
            sendno = str(answered_sendno)
        message = str(answer.get("message", ""))
        if code != 0:
            raise ProviderRefusedError(
                code, message, status, provider=PROVIDER, sendno=sendno, send_id=send_id
            )
        if not 200 <= status < 300:
            detail = f"UMS answered code 0 with HTTP {status}: {message}"
            raise ProviderRefusedError(
                None, detail, status, provider=PROVIDER, sendno=sendno, send_id=send_id
            )


def tracked_body(
    message: Mapping[str, Any],
    send_id: str,
    callback_url: str | None = None,
    *,
    default_url: str | None = None,
) -> dict[str, Any]:
    """``message`` with ``callback.params.umstrack_send = send_id`` beside the caller's own
    params, and ``callback.url``: ``callback_url`` (which the message may repeat but not
    contradict), else the message's own, else ``default_url``."""
    callback = message.get("callback")
    if callback is None:
        callback = {}
    if not isinstance(callback, Mapping):
        raise TypeError("callback must be a JSON object")
    params = callback.get("params")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise TypeError("callback.params must be a JSON object")
    if TRACKING_PARAM in params and params[TRACKING_PARAM] != send_id:
        raise ValueError(
            f"callback.params.{TRACKING_PARAM} is {params[TRACKING_PARAM]!r}, "
            f"but this send's id is {send_id!r}"
        )
    url = callback.get("url")
    if callback_url is not None and url is not None and url != callback_url:
        raise ValueError(f"callback.url {url!r} conflicts with callback_url {callback_url!r}")
    url = callback_url or url or default_url
    new_callback: dict[str, Any] = {**callback, "params": {**params, TRACKING_PARAM: send_id}}
    if url:
        new_callback["url"] = url
    else:
        new_callback.pop("url", None)
    return {**message, "callback": new_callback}
