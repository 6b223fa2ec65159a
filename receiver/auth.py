"""Who may call: UMS channels (Basic auth) on the callback URL, bearer tokens on the API.

Both compare digests in constant time, and both look at the header alone: a body is
never read before its sender is known.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from sender.http import basic_credentials


class AuthError(Exception):
    """The request does not carry the credentials of a configured channel."""


class ChannelAuth:
    """Checks a request's ``Authorization`` header against the configured channels."""

    def __init__(self, channels: Mapping[str, str]) -> None:
        # Compare digests, so every comparison runs over the same length.
        self._expected = [
            (key, hashlib.sha256(f"{key}:{secret}".encode()).digest())
            for key, secret in channels.items()
        ]

    def channel_for(self, authorization: str | None) -> str:
        """Return the channelkey the header authenticates, or raise AuthError."""
        if not authorization:
            raise AuthError("missing Authorization header")
        if authorization.partition(" ")[0].lower() != "basic":
            raise AuthError("Authorization is not Basic")
        credentials = basic_credentials(authorization)
        if credentials is None:
            raise AuthError("Basic credentials are not base64")
        given = hashlib.sha256(credentials).digest()
        match = None
        # No early exit: the time taken does not say which channel came close.
        for key, expected in self._expected:
            if hmac.compare_digest(given, expected) and match is None:
                match = key
        if match is None:
            raise AuthError("credentials of no configured channel")
        return match


class TokenAuth:
    """Checks ``Authorization: Bearer <token>`` against the configured tokens."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens]

    def allows(self, authorization: str | None) -> bool:
        """Whether the header carries one of the tokens."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        given = hashlib.sha256(token.strip().encode()).digest()
        # No early exit: the time taken does not say which token came close.
        return sum(hmac.compare_digest(given, d) for d in self._digests) > 0
