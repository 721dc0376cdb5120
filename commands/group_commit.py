"""Group commit: concurrent requests' new aggregates are saved in shared transactions.

The PostgreSQL recorder locks the events table for every insert (it keeps notification ids
gapless), so one transaction per HTTP request caps the whole platform at the table's commit
rate. Here the first caller becomes the leader and saves whatever others queued meanwhile;
each caller still returns only once its own events are committed.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

MAX_BATCH = 256


class GroupCommit:
    def __init__(self, save, max_batch: int = MAX_BATCH):
        self._save = save
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[tuple[object, Future]] = []
        self._leading = False

    def save(self, aggregate) -> int:
        """Saves `aggregate`'s pending events; returns the notification id of its last event."""
        done: Future = Future()
        with self._lock:
            self._queue.append((aggregate, done))
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        return done.result()

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
            recordings = self._save(*[aggregate for aggregate, _ in batch])
        except Exception as error:  # noqa: BLE001 - each caller gets the outcome of its own save
            if len(batch) == 1:
                batch[0][1].set_exception(error)
                return
            for item in batch:  # a bad one must not sink the others: retry each alone
                self._commit([item])
            return
        positions = {}
        for recording in recordings:
            positions[recording.domain_event.originator_id] = recording.notification.id
        for aggregate, done in batch:
            done.set_result(positions[aggregate.id])
