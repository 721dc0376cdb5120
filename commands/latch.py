"""A one-shot signal from one thread to the one thread that waits for it.

threading.Event and concurrent.futures.Future do this with a Condition: each wait allocates a lock
and each set walks the waiters under another. On the device-call path that was about a tenth of the
API's CPU per call (`exp-prof3`: a Future per commit, an Event per answer). A lock taken at birth and
released by `set` is all a single waiter needs.
"""

from __future__ import annotations

import threading


class Latch:
    __slots__ = ("_lock", "_set")

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        """Idempotent; callers that may race must set from one thread (or under their own lock)."""
        if not self._set:
            self._set = True
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """For the single waiter: True once set, False if `timeout` seconds passed first."""
        if self._set:
            return True
        return self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
