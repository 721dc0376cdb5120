"""Work done after an anonymous request has been answered, so its timing cannot tell whether an account exists."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Callable

log = logging.getLogger("iotcloud.identity")
MAX_PENDING = 10_000  # the code-issuing rate limits keep it far below this
# Each job starts a random 50-250 ms after it was queued: by then its request has been answered, so
# the job's CPU (which holds the GIL) does not stretch that answer, and later answers cannot tell
# which earlier request it belonged to.
DELAY = (0.05, 0.25)


def run_now(job: Callable[[], None]) -> None:
    """The synchronous stand-in (scripts and unit tests)."""
    job()


def settle_deferred(defer, timeout: float) -> bool:
    """True once the work `defer` queued so far has run (at once for `run_now`)."""
    wait_idle = getattr(defer, "wait_idle", None)
    return wait_idle(timeout) if wait_idle else True


class Background:
    """One daemon thread running jobs in order; a failing job is logged and costs only itself."""

    def __init__(self, name: str = "identity-background", delay: tuple[float, float] = DELAY):
        self._delay = delay
        self._random = random.SystemRandom()
        self._jobs: queue.Queue = queue.Queue(MAX_PENDING)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def __call__(self, job: Callable[[], None]) -> None:
        self._put(time.monotonic() + self._random.uniform(*self._delay), job)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once every job queued so far has run (tests and orderly shutdown)."""
        done = threading.Event()
        self._put(0.0, done.set)
        return done.wait(timeout)

    def _put(self, due: float, job: Callable[[], None]) -> None:
        try:
            self._jobs.put_nowait((due, job))
        except queue.Full:
            log.warning("background queue full; a code or notice was not sent")

    def _run(self) -> None:
        while True:
            due, job = self._jobs.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                job()
            except Exception:  # noqa: BLE001 - one job's failure must not stop the others
                log.exception("background identity job failed")
