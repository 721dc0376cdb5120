"""In-process throttles for the identity provider: sliding-window rate limits and per-client login backoff.

They are keyed by what the caller typed (a lowercased username or email), never by whether an
account exists, so a throttled answer reveals nothing. State lives in the API process: with
several API workers each keeps its own (the durable per-code attempt counter does not depend on it).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from commands.errors import TooManyAttempts

MAX_KEYS = 100_000  # beyond this, the stalest keys are forgotten (the overall limits still hold)


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `count` events per `window` seconds."""

    count: int
    window: float


@dataclass(frozen=True, slots=True)
class CodeLimits:
    """How often codes may be issued and guessed, per typed identifier and for the whole platform."""

    issue_per_key: Limit = Limit(5, 3600)
    issue_overall: Limit = Limit(2000, 3600)
    guess_per_key: Limit = Limit(20, 3600)
    guess_overall: Limit = Limit(6000, 3600)


def _retry_after(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class RateLimit:
    """Sliding-window log per key; `take(key)` records one event or raises TooManyAttempts."""

    def __init__(self, limit: Limit, clock=time.time):
        self._limit = limit
        self._clock = clock
        self._events: dict[object, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key) -> None:
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= MAX_KEYS:
                    self._forget_stale(now)
                events = self._events[key] = deque()
            while events and events[0] <= now - self._limit.window:
                events.popleft()
            if len(events) >= self._limit.count:
                raise TooManyAttempts(retry_after=_retry_after(events[0] + self._limit.window - now))
            events.append(now)

    def _forget_stale(self, now: float) -> None:
        for key in [k for k, e in self._events.items() if not e or e[-1] <= now - self._limit.window]:
            del self._events[key]
        while len(self._events) >= MAX_KEYS:
            del self._events[next(iter(self._events))]


class LoginBackoff:
    """Per (username, client): `free` failures cost nothing, then each one doubles the wait
    (1 s, 2 s, 4 s ... up to `max_delay`). A success from that client clears it; other clients are
    never slowed, so an attacker can delay only their own guesses, not the owner's login."""

    def __init__(self, free: int, max_delay: float, clock=time.time):
        self._free = free
        self._max_delay = max_delay
        self._clock = clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: tuple[str, str]) -> None:
        """Raises TooManyAttempts while `key` must still wait (before any password is checked)."""
        with self._lock:
            wait = self._wait(key, self._clock())
        if wait > 0:
            raise TooManyAttempts("too many failed logins from this client; wait and retry",
                                  retry_after=_retry_after(wait))

    def failed(self, key: tuple[str, str]) -> None:
        now = self._clock()
        with self._lock:
            count, _ = self._current(key, now)
            if key not in self._failures and len(self._failures) >= MAX_KEYS:
                self._forget_stale(now)
            self._failures[key] = (count + 1, now)

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def delay_after(self, failures: int) -> float:
        if failures < self._free:
            return 0.0
        return float(min(self._max_delay, 2 ** (failures - self._free)))

    def _current(self, key, now) -> tuple[int, float]:
        count, last = self._failures.get(key, (0, 0.0))
        if count and now - last > 2 * self._max_delay:  # a long quiet spell forgives old failures
            return 0, 0.0
        return count, last

    def _wait(self, key, now) -> float:
        count, last = self._current(key, now)
        return last + self.delay_after(count) - now if count else 0.0

    def _forget_stale(self, now: float) -> None:
        for key in [k for k, (_, last) in self._failures.items() if now - last > 2 * self._max_delay]:
            del self._failures[key]
        while len(self._failures) >= MAX_KEYS:
            del self._failures[next(iter(self._failures))]


class CodeIssueThrottle:
    """How often codes may be sent, per typed identifier (username or email) and per purpose overall."""

    def __init__(self, limits: CodeLimits, clock=time.time):
        self._per_key = RateLimit(limits.issue_per_key, clock)
        self._overall = RateLimit(limits.issue_overall, clock)

    def take(self, purpose: str, identifier: str) -> None:
        self._per_key.take((purpose, identifier.strip().lower()))
        self._overall.take(purpose)
