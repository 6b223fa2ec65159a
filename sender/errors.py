"""Errors of the provider side, named by what they mean for the caller, shared by UMS and
RongCloud (as ``requests.exceptions`` names transport failures).

- :class:`InvalidMessageError`: a rule of the provider's message format is broken;
  nothing was sent.
- :class:`ProviderRefusedError`: the provider answered, and not with success; it
  carries the provider's business ``code`` and ``message``.
- :class:`NotSentError`: the request provably never reached the provider (connection
  refused, connect timeout); safe to retry.
- :class:`UnknownOutcomeError`: the request went out and no answer came; the message
  may have been sent, so it must not be sent again blindly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# Each provider's business code for "invalid parameter": UMS 4004 (业务返回码),
# RongCloud 1002 (server API status codes).
_INVALID_PARAMETER = {"ums": 4004, "rongcloud": 1002}


def provider_label(provider: str) -> str:
    """The provider's name as people write it."""
    return {"ums": "UMS", "rongcloud": "RongCloud"}.get(provider, provider)


class ProviderError(Exception):
    """Base of every error the provider side raises; ``provider`` is ``ums`` or
    ``rongcloud``."""

    provider: str = ""


class InvalidMessageError(ProviderError, ValueError):
    """A message the provider would refuse: the field at fault, why, and the business
    code the provider would answer. Nothing was sent."""

    def __init__(
        self, field: str, reason: str, code: int | None = None, *, provider: str = "ums"
    ) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        # Without a code of its own, a rule answers the provider's "invalid parameter".
        self.code = _INVALID_PARAMETER[provider] if code is None else code
        self.provider = provider

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__))


class SendError(ProviderError):
    """A request to the provider did not succeed. ``sendno`` and ``send_id`` say which
    send it was, where known."""

    @staticmethod
    def _which(sendno: str | None, send_id: str | None) -> str:
        known = [f"{k}={v!r}" for k, v in (("sendno", sendno), ("send_id", send_id)) if v]
        return f" ({', '.join(known)})" if known else ""

    def __init__(
        self,
        text: str,
        *,
        provider: str,
        sendno: str | None = None,
        send_id: str | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(text)
        self.provider = provider
        self.sendno = sendno
        self.send_id = send_id
        self.base_url = base_url  # the base URL the request went to, where it matters

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__, self.args))


class ProviderRefusedError(SendError):
    """The provider answered, but not with success. ``code`` is its business code (None
    when the answer was no envelope of the provider's), ``message`` its text."""

    def __init__(
        self,
        code: int | None,
        message: str,
        http_status: int | None,
        *,
        provider: str,
        sendno: str | None = None,
        send_id: str | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(
            f"{provider_label(provider)} error {code} (HTTP {http_status}): {message}",
            provider=provider,
            sendno=sendno,
            send_id=send_id,
            base_url=base_url,
        )
        self.code = code
        self.message = message
        self.http_status = http_status


class NotSentError(SendError):
    """No connection to the provider could be made: the request was never sent, and
    it is safe to retry. ``tried`` lists the base URLs tried."""

    def __init__(
        self,
        reason: str,
        *,
        provider: str,
        attempts: int = 1,
        tried: Sequence[str] = (),
        sendno: str | None = None,
        send_id: str | None = None,
    ) -> None:
        where = f" ({', '.join(tried)})" if tried else ""
        super().__init__(
            f"never sent: could not connect to {provider_label(provider)}{where} in "
            f"{attempts} attempt(s){self._which(sendno, send_id)}: {reason}",
            provider=provider,
            sendno=sendno,
            send_id=send_id,
        )
        self.reason = reason
        self.attempts = attempts
        self.tried = list(tried)


class UnknownOutcomeError(SendError):
    """The request may have reached the provider, but no answer came: the message may
    or may not have been sent. Never resent automatically."""

    def __init__(
        self,
        reason: str,
        *,
        provider: str,
        sendno: str | None = None,
        send_id: str | None = None,
        base_url: str | None = None,
    ) -> None:
        super().__init__(
            f"outcome unknown, the message may or may not have been sent"
            f"{self._which(sendno, send_id)}: {reason}",
            provider=provider,
            sendno=sendno,
            send_id=send_id,
            base_url=base_url,
        )
        self.reason = reason


def _rebuild(cls: type[Exception], state: dict[str, Any], args: tuple[Any, ...] = ()) -> Any:
    """Unpickle an error without calling its __init__ (its arguments are keywords)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
