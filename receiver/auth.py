"""Channel authentication of UMS callbacks: Basic base64(channelkey:mastersecret)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping


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
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise AuthError("Authorization is not Basic")
        try:
            given = hashlib.sha256(base64.b64decode(token.strip(), validate=True)).digest()
        except (binascii.Error, ValueError):
            raise AuthError("Basic credentials are not base64") from None
        match = None
        # No early exit: the time taken does not say which channel came close.
        for key, expected in self._expected:
            if hmac.compare_digest(given, expected) and match is None:
                match = key
        if match is None:
            raise AuthError("credentials of no configured channel")
        return match
