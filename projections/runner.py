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
from queries.read_models import ReadModelCatalogue, collection_name

log = logging.getLogger("iotcloud.projections")
DEFAULT_BATCH = 500


class Projector:
    """Keeps one projection's live generation up to date with its source applications."""

    def __init__(self, projection, sources: dict[str, Application], db: Database, batch_size: int = DEFAULT_BATCH):
        self.projection = projection
        self._sources = {name: sources[name] for name in projection.sources}
        self.db = db
        self._catalogue = ReadModelCatalogue(db)
        self._batch_size = batch_size
        self._prepared: set[int] = set()
        # This process's own checkpoints, so an idle step costs one query (the log), not three.
        self._positions: dict[tuple[int, str], int] = {}

    def step(self, generation: int | None = None) -> int:
        """Applies at most one batch per source; returns how many events it applied."""
        name = self.projection.name
        generation = self._catalogue.active_generation(name) if generation is None else generation
        collection = self.db[collection_name(name, generation)]
        if generation not in self._prepared:
            self.projection.prepare(collection)
            self._prepared.add(generation)
        applied = 0
        for source_name, app in self._sources.items():
            key = (generation, source_name)
            if key not in self._positions:
                self._positions[key] = self._catalogue.position(name, generation, source_name)
            notifications = app.recorder.select_notifications(start=self._positions[key] + 1, limit=self._batch_size)
            writer = BatchWriter(collection)
            for notification in notifications:
                self.projection.apply(app.mapper.to_domain_event(notification), notification.id, writer)
            writer.flush()
            if notifications:
                self._catalogue.advance(name, generation, source_name, notifications[-1].id)
                self._positions[key] = notifications[-1].id
                applied += len(notifications)
        return applied

    def source_head(self, source: str) -> int:
        return self._sources[source].recorder.max_notification_id() or 0

    def head(self) -> int:
        return sum(self.source_head(source) for source in self._sources)


def run_projectors(projectors: list[Projector], stop: threading.Event, idle_wait: float = 0.02) -> None:
    """Runs until `stop` is set; a failing batch is logged and retried, never skipped."""
    failures = 0
    while not stop.is_set():
        try:
            applied = sum(projector.step() for projector in projectors)
            failures = 0
        except Exception:  # noqa: BLE001 - a projector must outlive a broken database connection
            failures += 1
            log.exception("projection batch failed; retrying")
            applied = 0
            stop.wait(min(5.0, 0.1 * 2 ** min(failures, 6)))
        if not applied:
            stop.wait(idle_wait)


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


def progress_bar(stream=sys.stderr, width: int = 30):
    """A text progress bar: `device_list [#####.....] 1200/2400 events 0.8s`."""
    def show(name: str, done: int, total: int, elapsed: float, final: bool) -> None:
        filled = int(width * done / total) if total else width
        stream.write(f"\r{name:<12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} events {elapsed:.1f}s")
        if final:
            stream.write("\n")
        stream.flush()
    return show


__all__ = ["Projector", "run_projectors", "rebuild", "progress_bar"]
