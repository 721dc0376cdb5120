"""Fair shares of the API's request threads.

gunicorn's gthread worker hands every accepted connection to a fixed pool of threads and queues
the rest behind them, health checks included. A device call that waits for its device holds a
thread for up to a minute and a half, so waiting calls are bounded per user and in all, and public
(unauthenticated) requests per client address. Over a bound the request is refused at once (429 +
Retry-After) instead of queued: a queued request would still hold a thread.
"""

from __future__ import annotations

import math
import threading
import time

from commands.errors import TooManyAttempts


class Busy(Exception):
    def __init__(self, retry_after: int, in_all: bool):
        super().__init__(f"busy; retry after {retry_after} s")
        self.retry_after, self.in_all = retry_after, in_all


class ConcurrencyLimit:
    """At most `per_key` holders per key at once, and at most `total` (0: no bound) in all."""

    def __init__(self, per_key: int, total: int = 0, clock=time.monotonic):
        if per_key < 1 or total < 0:
            raise ValueError("a concurrency limit must allow at least one holder per key")
        self._per_key, self._total, self._clock = per_key, total, clock
        self._lock = threading.Lock()
        self._deadlines: dict[str, list[float]] = {}  # when each holder of a key is due to leave
        self._holders = 0

    @property
    def per_key(self) -> int:
        return self._per_key

    def acquire(self, key: str, seconds: float) -> float:
        """Takes a slot for about `seconds` and answers the token `release` wants; raises Busy."""
        now = self._clock()
        with self._lock:
            mine = self._deadlines.get(key, [])
            if len(mine) >= self._per_key or (self._total and self._holders >= self._total):
                in_all = len(mine) < self._per_key
                ahead = [d for ds in self._deadlines.values() for d in ds] if in_all else mine
                raise Busy(max(1, math.ceil(min(ahead, default=now) - now)), in_all)
            deadline = now + seconds
            self._deadlines.setdefault(key, []).append(deadline)
            self._holders += 1
            return deadline

    def release(self, key: str, deadline: float) -> None:
        with self._lock:
            mine = self._deadlines.get(key)
            if mine is None or deadline not in mine:
                return
            mine.remove(deadline)
            if not mine:
                del self._deadlines[key]
            self._holders -= 1

    def held(self, key: str) -> int:
        with self._lock:
            return len(self._deadlines.get(key, ()))


class TooManyWaitingCalls(TooManyAttempts):
    problem, status = "too-many-waiting-calls", 429
    title = "Too many of your device calls are waiting for their devices; retry later or call with wait=false"


class TooManyConcurrentRequests(TooManyAttempts):
    problem, status = "too-many-concurrent-requests", 429
    title = "Too many requests from your address at once; retry later"
