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
        self.catalogue = ReadModelCatalogue(db)
        self.batch_size = batch_size
        self.consumed = ConsumedTopics(projection)
        self._prepared: set[int] = set()
        # This process's own checkpoints, so an idle step costs one query (the log), not three.
        self._positions: dict[tuple[int, str], int] = {}
        self.behind: set[str] = set()  # sources whose last batch was full: more is waiting there
        self._trimmed = -TRIM_EVERY
        self._lags: dict[tuple[int, str], LagWindow] = {}
        # Writes held back for the next batch (BatchWriter.flush(keep=...)), by (generation, source).
        self._held: dict[tuple[int, str], dict] = {}
        self.clock = time.monotonic  # how old a held write is

    def held(self, generation: int, source: str) -> dict:
        return self._held.setdefault((generation, source), {})

    def keep_held(self, generation: int, source: str, held: dict) -> None:
        self._held[(generation, source)] = held

    def holding(self, source: str | None = None) -> bool:
        """Whether writes are held back (for `source`, or any)."""
        return any(held for (_, held_source), held in self._held.items() if source in (None, held_source))

    @property
    def sources(self) -> dict[str, Application]:
        return self._sources

    def step(self, generation: int | None = None, sources: set[str] | None = None) -> int:
        """Applies at most one batch per source (of `sources`, default all); returns how many events it read."""
        applied = 0
        for source_name in self._sources:
            if sources is None or source_name in sources:
                applied += step_source([self], source_name, generation)
        self.trim_if_due(generation)
        return applied

    def target(self, generation: int | None, source: str) -> tuple[int, object, int]:
        """(generation, its collection, position applied) for a batch of `source`."""
        name = self.projection.name
        generation = self.catalogue.active_generation(name) if generation is None else generation
        collection = self.db[collection_name(name, generation)]
        if generation not in self._prepared:
            self.projection.prepare(collection)
            self._prepared.add(generation)
        key = (generation, source)
        if key not in self._positions:
            self._positions[key] = self.catalogue.position(name, generation, source)
        return generation, collection, self._positions[key]

    def applied(self, generation: int, source: str, position: int, full: bool) -> None:
        self._positions[(generation, source)] = max(position, self._positions.get((generation, source), 0))
        if full:
            self.behind.add(source)
        else:
            self.behind.discard(source)

    def lag_window(self, generation: int, source: str) -> LagWindow:
        return self._lags.setdefault((generation, source), LagWindow())

    def trim_if_due(self, generation: int | None = None) -> None:
        trim = getattr(self.projection, "trim", None)
        if trim is not None and time.monotonic() - self._trimmed > TRIM_EVERY:
            self._trimmed = time.monotonic()
            name = self.projection.name
            generation = self.catalogue.active_generation(name) if generation is None else generation
            trim(self.db[collection_name(name, generation)])

    def source_head(self, source: str) -> int:
        return self._sources[source].recorder.max_notification_id() or 0

    def head(self) -> int:
        return sum(self.source_head(source) for source in self._sources)


def step_source(projectors: list[Projector], source: str, generation: int | None = None, paced: float = 0.0,
                hold: float = 0.0) -> int:
    """One batch of `source` for every projector that follows it; returns how many events it read.

    The log is read once and each event decoded once for all of them (the history and device-list
    read models both follow DeviceFleet), every projector's writes go out as its one bulk request,
    and then all their checkpoints in one more. `paced`: seconds the batch was held back before it
    began (reported with the lag).

    `hold` (seconds; the live projector only): a projection's `holdable` writes (a device call still
    open) wait up to that long for a later batch, so that a call's document is written once, with its
    outcome, instead of twice, at any load (issue 7 step 70: at 300 calls/s the read store's CPU per
    call fell by a quarter; step 35 held only in batches of more than 16 events). A batch that finds
    no new events (the wait for the outcome ran out) writes everything it carried; the checkpoint
    stays before the first held event, so what is held is never lost to a crash and a reader waiting
    for it (read-your-writes) nudges it out (a nudged batch holds nothing)."""
    app = projectors[0].sources[source]
    targets = [projector.target(generation, source) for projector in projectors]
    batch_size = min(projector.batch_size for projector in projectors)
    began = time.time()
    notifications = app.recorder.select_notifications(start=min(t[2] for t in targets) + 1, limit=batch_size)
    carried = [projector.held(gen, source) for projector, (gen, _, _) in zip(projectors, targets)]
    if not notifications:
        for projector in projectors:
            projector.behind.discard(source)
        if not any(carried):
            return 0
    holds = hold > 0 and generation is None and bool(notifications)
    decoded: dict[int, object] = {}
    writers = []
    for projector, (gen, collection, position), held in zip(projectors, targets, carried):
        writer, consumed = BatchWriter(collection, held, projector.clock), projector.consumed
        for notification in notifications:
            if notification.id <= position or not consumed(notification.topic):
                continue
            event = decoded.get(notification.id)
            if event is None:
                event = decoded[notification.id] = app.mapper.to_domain_event(notification)
            writer.note(event.timestamp.timestamp())
            consumed.handler(type(event))(event, notification.id, writer)
        writers.append(writer)
    last = notifications[-1] if notifications else None
    read_to = [last.id if last else position for _, _, position in targets]  # each projector's new position
    # The batch's lag is that of its last event (None when only held writes went out).
    last_at = (decoded.get(last.id) or app.mapper.to_domain_event(last)).timestamp.timestamp() if last else None
    applied_at = time.time()
    for projector, writer in zip(projectors, writers):
        writer.flush(getattr(projector.projection, "holdable", None) if holds else None, hold)
    written_at = time.time()
    advances = []
    for projector, (gen, _, _), writer, read in zip(projectors, targets, writers, read_to):
        # Taken only once every write went out: a batch that failed keeps what it carried, and is read again.
        projector.keep_held(gen, source, writer.held)
        held_from = writer.held_from
        lag = None
        if generation is None:  # the live read model; a rebuild's events were recorded long ago
            window = projector.lag_window(gen, source)
            window.add(written_at, writer.recorded, began, applied_at, paced)
            lag = window.due()
        saved = read if held_from is None else held_from - 1
        advances.append((projector.projection.name, gen, source, saved, last_at, lag))
    projectors[0].catalogue.advance_many(advances)
    full = len(notifications) >= batch_size
    for projector, (gen, _, _), read in zip(projectors, targets, read_to):
        projector.applied(gen, source, read, full)
    return len(notifications)


TINY_BATCH = 16  # events: a batch this small, right after another, is worth holding back a little


class Pacer:
    """When the next batch may begin: at once, unless the projector is busy with trickles.

    Each batch reads everything committed so far, and the commits made while it is applied form
    the next one ("natural batching": batches grow with the load, and nothing waits while the
    projector keeps up). What that alone costs is a batch per commit when commits trickle in a few
    ms apart (a call's Requested and its outcome): every batch is a log query, a bulk write
    and a checkpoint write whatever it holds. So a batch that held at most `tiny` events and began
    less than `interval` ago holds the next one back until `interval` after it began; a commit
    after a quiet spell, a batch after a larger one, and a source a writer waits for are read at once.
    """

    def __init__(self, interval: float, tiny: int = TINY_BATCH, clock=time.monotonic):
        self.interval, self.tiny, self._clock = interval, tiny, clock
        self._began, self._events = -interval, 0

    def hold(self) -> float:
        """Seconds the next batch should wait (0: begin now)."""
        if self._events > self.tiny:
            return 0.0
        return max(0.0, self._began + self.interval - self._clock())

    def began(self) -> None:
        self._began = self._clock()

    def ended(self, events: int) -> None:
        self._events = events


def run_projectors(projectors: list[Projector], stop: threading.Event, wakeup: Wakeup | None = None,
                   min_interval: float = 0.0, longest_hold: float = 0.0) -> None:
    """Runs until `stop` is set; a failing batch is logged and retried, never skipped.

    A source is read when the wakeup names it (a PostgreSQL commit notification, or every poll
    interval on other stores), together with every notification pending by then (one batch for all
    the commits they name), and again at once while its batches come back full. Where writers can
    nudge (PostgreSQL), `Pacer` holds a batch back for at most `min_interval` after a tiny one; a
    writer waiting to read its own write nudges its source past that wait. `longest_hold`: how long a
    batch may hold an open call's write for its outcome (`step_source`); a nudged batch holds none.
    """
    sources = {name: app for projector in projectors for name, app in projector.sources.items()}
    followers = {name: [p for p in projectors if name in p.sources] for name in sources}
    wakeup = wakeup or wakeup_for(sources, stop)
    pacer = Pacer(min_interval if wakeup.hears_nudges else 0.0)
    due, wanted, failures = set(sources), set(), 0
    try:
        while not stop.is_set():
            if due:
                held = 0.0 if wanted else pacer.hold()
                paced_from = time.monotonic()
                if held:
                    until = paced_from + held
                    while not (wanted or stop.is_set()) and time.monotonic() < until:
                        wanted = wakeup.nudged(until - time.monotonic())
                    due |= wanted | wakeup.wait(0)[0]  # every commit notified meanwhile: one batch
                paced = time.monotonic() - paced_from
                pacer.began()
                try:
                    events = 0
                    for name in sources:
                        if name in due:
                            # A reader waiting for its write (a nudge) gets everything written at once.
                            events += step_source(followers[name], name, paced=paced,
                                                  hold=0.0 if name in wanted else longest_hold)
                    for projector in projectors:
                        projector.trim_if_due()
                    failures = 0
                    due = set().union(*(projector.behind for projector in projectors))
                    pacer.ended(pacer.tiny + 1 if due else events)
                except Exception:  # noqa: BLE001 - a projector must outlive a broken database connection
                    failures += 1
                    log.exception("projection batch failed; retrying")
                    stop.wait(min(5.0, 0.1 * 2 ** min(failures, 6)))
                    due = set(sources)
                    continue
            holding = {name for name in sources if any(p.holding(name) for p in followers[name])}
            woken, wanted = wakeup.wait(0 if due else (longest_hold if holding else None))
            due |= woken | holding  # a held write goes out with its outcome's batch, or once its wait runs out
    finally:
        wakeup.close()


def retire_read_models(db: Database) -> list[str]:
    """Drops the read models no projection writes any more (queries.read_models.RETIRED)."""
    dropped = ReadModelCatalogue(db).retire()
    if dropped:
        log.info("dropped retired read models", extra={"collections": dropped})
    return dropped


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


__all__ = ["Projector", "Pacer", "step_source", "run_projectors", "retire_read_models", "rebuild", "progress_bar"]
