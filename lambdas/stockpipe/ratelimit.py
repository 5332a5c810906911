"""Client-side request-rate limiter: a thread-safe sliding window.

Tiingo counts requests per clock-aligned hour and answers 429 past the quota. A clock-aligned hour is
one particular interval of length ``window``; a limiter that allows at most ``limit`` acquisitions in
*every* interval of that length therefore never exceeds the server's quota, yet lets a steady run use
all of it (``limit`` requests, then each further one as soon as the oldest leaves the window).

A slot counts a request Tiingo may have seen. A request that never left (the connection could not be
made) is no request: its caller hands the slot back with ``give_back``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stockpipe.errors import RateLimitError


@dataclass(frozen=True)
class Slot:
    """One acquisition: when it was counted (what ``give_back`` un-counts)."""

    time: float


class RateLimiter:
    """At most ``limit`` acquisitions in any half-open interval ``[t, t + window)``.

    The clock and sleep are injectable so tests run on a fake clock instead of waiting.
    """

    def __init__(
        self,
        limit: int,
        window: float = 3600.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"rate limit must be a positive integer, got {limit!r}")
        if not window > 0:
            raise ValueError(f"rate-limit window must be positive seconds, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Times of the last `limit` acquisitions, oldest first; older ones can never matter again.
        self._times: deque[float] = deque(maxlen=limit)

    @classmethod
    def per_hour(cls, n: int, **kwargs: Any) -> RateLimiter:
        """Tiingo's plans are stated per hour (50 on the free plan)."""
        return cls(n, 3600.0, **kwargs)

    def _reserve(self) -> Slot | float:
        """Take a slot now, or return how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            if len(self._times) < self.limit:
                self._times.append(now)
                return Slot(now)
            wait = self._times[0] + self.window - now
            if wait <= 0:
                self._times.append(now)  # maxlen drops the oldest
                return Slot(now)
            return wait

    def available(self) -> int:
        """How many acquisitions would succeed right now without waiting."""
        with self._lock:
            now = self._clock()
            expired = sum(1 for t in self._times if t + self.window <= now)
            return self.limit - len(self._times) + expired

    def try_acquire(self) -> bool:
        """Take a slot if one is free right now; never blocks."""
        return isinstance(self._reserve(), Slot)

    def acquire(self, max_wait: float | None = None) -> Slot:
        """Block until one more request fits in the window, then count it.

        With ``max_wait``, raise RateLimitError instead of waiting longer than that: a Lambda cannot
        sleep out an hourly quota, so it stops and leaves the rest to its next run.
        """
        while True:
            wait = self._reserve()
            if isinstance(wait, Slot):
                return wait
            if max_wait is not None and wait > max_wait:
                raise RateLimitError(
                    f"client-side limit of {self.limit} requests per {self.window:g} s reached; "
                    f"next slot in {wait:.0f} s",
                    retry_after=wait,
                )
            # Sleep outside the lock; another thread may take the slot first, so re-check afterwards.
            self._sleep(wait)

    def give_back(self, slot: Slot) -> None:
        """Un-count an acquisition whose request never left (it cannot have counted at the server).

        Once per slot. A slot the window no longer holds (``maxlen`` dropped it as too old to matter)
        is a no-op.
        """
        with self._lock, contextlib.suppress(ValueError):
            self._times.remove(slot.time)  # equal times are interchangeable

    def __repr__(self) -> str:
        return f"RateLimiter(limit={self.limit}, window={self.window})"
