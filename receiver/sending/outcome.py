"""What both providers' senders share: the error that carries a send's outcome."""

from __future__ import annotations

from typing import Any

from sender.errors import SendError


class SendFailedError(Exception):
    """A request of a send failed (and was recorded). ``error`` says why, by meaning
    (refused, not sent, unknown outcome); ``outcome`` says which requests went out
    before it."""

    def __init__(self, error: SendError, outcome: Any) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcome = outcome
