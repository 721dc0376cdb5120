"""Catch-up projectors: follow applications' notification logs into MongoDB read models.

Each batch is applied with guarded (position-checked) writes and the checkpoint is advanced
after it, so a crash between the two replays the batch without applying anything twice.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from eventsourcing.application import Application
from pymongo.database import Database

from projections.guarded import BatchWriter
from projections.lag import LagWindow
from projections.topics import ConsumedTopics
from projections.wakeup import Wakeup, wakeup_for
from queries.read_models import ReadModelCatalogue, collection_name

log = logging.getLogger("iotcloud.projections")
DEFAULT_BATCH = 500
TRIM_EVERY = 600.0  # seconds between two retention trims of a projection that has one (`trim`)


class Projector:
    """Keeps one projection's live generation up to date with its source applications."""

    def __init__(self, projection, sources: dict[str, Application], db: Database, batch_size: int = DEFAULT_BATCH):
        self.projection = projection
        self._sources = {name: sources[name] for name in projection.sources}
        self.db = db
        self._catalogue = ReadModelCatalogue(db)
        self._batch_size = batch_size
        self._consumed = ConsumedTopics(projection)
        self._prepared: set[int] = set()
        # This process's own checkpoints, so an idle step costs one query (the log), not three.
        self._positions: dict[tuple[int, str], int] = {}
        self.behind: set[str] = set()  # sources whose last batch was full: more is waiting there
        self._trimmed = -TRIM_EVERY
        self._lags: dict[tuple[int, str], LagWindow] = {}

    @property
    def sources(self) -> dict[str, Application]:
        return self._sources

    def step(self, generation: int | None = None, sources: set[str] | None = None) -> int:
        """Applies at most one batch per source (of `sources`, default all); returns how many events it read."""
        name = self.projection.name
        generation = self._catalogue.active_generation(name) if generation is None else generation
        collection = self.db[collection_name(name, generation)]
        if generation not in self._prepared:
            self.projection.prepare(collection)
            self._prepared.add(generation)
        applied = 0
        for source_name, app in self._sources.items():
            if sources is not None and source_name not in sources:
                continue
            key = (generation, source_name)
            if key not in self._positions:
                self._positions[key] = self._catalogue.position(name, generation, source_name)
            notifications = app.recorder.select_notifications(start=self._positions[key] + 1, limit=self._batch_size)
            writer = BatchWriter(collection)
            event, recorded = None, []
            for notification in notifications:
                event = None
                if self._consumed(notification.topic):
                    event = app.mapper.to_domain_event(notification)
                    self.projection.apply(event, notification.id, writer)
                    recorded.append(event.timestamp.timestamp())
            writer.flush()
            if notifications:
                last = event or app.mapper.to_domain_event(notifications[-1])  # its time: the batch's lag
                window = self._lags.setdefault((generation, source_name), LagWindow())
                window.add(time.time(), recorded)
                self._catalogue.advance(name, generation, source_name, notifications[-1].id,
                                        last.timestamp.timestamp(), window.due())
                self._positions[key] = notifications[-1].id
                applied += len(notifications)
            if len(notifications) >= self._batch_size:
                self.behind.add(source_name)
            else:
                self.behind.discard(source_name)
        trim = getattr(self.projection, "trim", None)
        if trim is not None and time.monotonic() - self._trimmed > TRIM_EVERY:
            self._trimmed = time.monotonic()
            trim(collection)
        return applied

    def source_head(self, source: str) -> int:
        return self._sources[source].recorder.max_notification_id() or 0

    def head(self) -> int:
        return sum(self.source_head(source) for source in self._sources)


def run_projectors(projectors: list[Projector], stop: threading.Event, wakeup: Wakeup | None = None,
                   min_interval: float = 0.0) -> None:
    """Runs until `stop` is set; a failing batch is logged and retried, never skipped.

    A source is read when the wakeup names it (a PostgreSQL commit notification, or every poll
    interval on other stores) and again at once while its batches come back full. Where writers
    can nudge (PostgreSQL), a batch also waits until `min_interval` has passed since the previous
    one began: a commit after a quiet spell is read at once, but under load the events of that
    interval share one batch (one write per document and per checkpoint instead of one per event),
    and a writer waiting to read its own write nudges its source past that wait.
    """
    sources = {name: app for projector in projectors for name, app in projector.sources.items()}
    wakeup = wakeup or wakeup_for(sources, stop)
    linger = min_interval if wakeup.hears_nudges else 0.0
    due, wanted, failures, catching_up, started = set(sources), set(), 0, False, -linger
    try:
        while not stop.is_set():
            if due:
                until = started + linger
                if not (wanted or catching_up) and time.monotonic() < until:
                    while not (wanted or stop.is_set()) and time.monotonic() < until:
                        wanted = wakeup.nudged(until - time.monotonic())
                    due |= wanted | wakeup.wait(0)[0]  # the commits of the interval: all read in this batch
                started = time.monotonic()
                try:
                    for projector in projectors:
                        chosen = due.intersection(projector.sources)
                        if chosen:
                            projector.step(sources=chosen)
                    failures = 0
                    due = set().union(*(projector.behind for projector in projectors))
                    catching_up = bool(due)
                except Exception:  # noqa: BLE001 - a projector must outlive a broken database connection
                    failures += 1
                    log.exception("projection batch failed; retrying")
                    stop.wait(min(5.0, 0.1 * 2 ** min(failures, 6)))
                    due = set(sources)
                    continue
            woken, wanted = wakeup.wait(0 if due else None)
            due |= woken
    finally:
        wakeup.close()


def rebuild(projector: Projector, progress=None) -> int:
    """Replays the whole event store into the next generation, then makes it live. Returns it."""
    catalogue = ReadModelCatalogue(projector.db)
    name = projector.projection.name
    active = catalogue.active_generation(name)
    existing = catalogue.generations(name)
    generation = max([active, *existing]) + 1
    projector.db.drop_collection(collection_name(name, generation))
    catalogue.forget(name, generation)
    total, done, started = projector.head(), 0, time.monotonic()
    while True:
        applied = projector.step(generation)
        done += applied
        if not applied:
            break
        if progress:
            progress(name, min(done, total), max(total, done), time.monotonic() - started, False)
    if progress:
        progress(name, done, done, time.monotonic() - started, True)
    catalogue.activate(name, generation)
    for old in existing + [active]:
        if old < generation - 1:
            projector.db.drop_collection(collection_name(name, old))
            catalogue.forget(name, old)
    return generation


def progress_bar(stream=None, width: int = 30):
    """A text progress bar: `device_list [#####.....] 1200/2400 events 0.8s` (on stderr by default)."""
    def show(name: str, done: int, total: int, elapsed: float, final: bool) -> None:
        out = stream or sys.stderr
        filled = int(width * done / total) if total else width
        out.write(f"\r{name:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events {elapsed:.1f}s")
        if final:
            out.write("\n")
        out.flush()
    return show


__all__ = ["Projector", "run_projectors", "rebuild", "progress_bar"]
