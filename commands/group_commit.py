"""Group commit: concurrent requests' events are saved in shared transactions.

The PostgreSQL recorder locks the events table for every insert (it keeps notification ids
gapless), so one transaction per HTTP request caps the whole platform at the table's commit
rate. Here the first caller becomes the leader and saves whatever others queued meanwhile;
each caller still returns only once its own events are committed. `submit` queues events
without waiting (outcomes recorded after the caller was answered); a background thread leads
when no caller does.

Events are collected from each aggregate when it is queued, so a batch that fails in the store
can be retried item by item (an aggregate gives its pending events away only once).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

from commands.latch import Latch

MAX_BATCH = 256
LINGER = 0.005  # seconds queued events wait for a caller's commit before the background thread commits them
log = logging.getLogger("iotcloud.group_commit")


class GroupCommit:
    def __init__(self, save, max_batch: int = MAX_BATCH, linger: float = LINGER):
        self._save = save
        self._max_batch = max_batch
        self._linger = linger
        self._lock = threading.Lock()
        self._queue: list[tuple[list, object, Future | _Saved]] = []
        self._leading = False
        self._wake = threading.Condition(self._lock)
        self._flusher: threading.Thread | None = None

    def save(self, aggregate) -> int:
        """Saves `aggregate`'s pending events; returns the notification id of its last event."""
        done = self._enqueue(aggregate, _Saved())
        with self._lock:
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        return done.result()

    def submit(self, aggregate) -> Future:
        """Queues `aggregate`'s pending events and returns at once; the future ends with the save.
        They ride along with the next caller's commit, or the background thread commits them after
        `linger` seconds (one commit per sequential call instead of two)."""
        done = self._enqueue(aggregate, Future())
        with self._lock:
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._flush_forever, name="group-commit", daemon=True)
                self._flusher.start()
            self._wake.notify()
        return done

    def _enqueue(self, aggregate, done):
        events = list(aggregate.collect_events())
        with self._lock:
            self._queue.append((events, aggregate.id, done))
        return done

    def _flush_forever(self) -> None:
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
            time.sleep(self._linger)  # a caller's commit may take the queued events meanwhile
            with self._lock:
                if self._leading or not self._queue:
                    continue
                self._leading = True
            self._lead()

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                if not batch:
                    self._leading = False
                    return
            self._commit(batch)

    def _commit(self, batch) -> None:
        try:
            recordings = self._save(*[event for events, _, _ in batch for event in events])
        except Exception as error:  # noqa: BLE001 - each caller gets the outcome of its own save
            if len(batch) == 1:
                batch[0][2].set_exception(error)
                return
            for item in batch:  # a bad one must not sink the others: retry each alone
                self._commit([item])
            return
        positions = {}
        for recording in recordings or ():
            positions[recording.domain_event.originator_id] = recording.notification.id
        for _, originator_id, done in batch:
            done.set_result(positions.get(originator_id))


class _Saved:
    """The outcome of one `save`, for the one thread waiting in it (a Future would cost a Condition)."""

    __slots__ = ("_done", "_result", "_error")

    def __init__(self):
        self._done = Latch()
        self._result = self._error = None

    def set_result(self, result) -> None:
        self._result = result
        self._done.set()

    def set_exception(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self):
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._result
