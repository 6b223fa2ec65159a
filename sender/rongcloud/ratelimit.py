"""RongCloud's rate limit, kept on our side: at most 6000 recipients a minute per app
(发送单聊模板消息, Send private template message), shared by every thread of the
process, so that a large send waits instead of being refused with code 1008."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .protocol import RATE_LIMIT, RATE_PERIOD

log = logging.getLogger(__name__)


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
            log.info(
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
