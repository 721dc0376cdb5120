"""Projection lag, per projection and source: how far each live read model is behind its event
store (events not yet applied, and how long the oldest of them has waited), and how long the last
applied batch took from its last event's recording to being written (`lag_ms`)."""

from __future__ import annotations

import math
import time
from collections import Counter, deque

from eventsourcing.application import Application

from queries.read_models import ReadModelCatalogue


WINDOW = 30.0  # seconds of applied events the lag percentiles cover


PARTS = ("wait", "paced", "apply", "write")  # what each event's lag is made of (see LagWindow)

STEPS_PER_DOUBLING = 64  # histogram resolution: a reported percentile is within 1.1 % of the exact one


class LagWindow:
    """Per-event lag (recorded -> written to the read model) of the events applied in the last
    `seconds`; the projector stores its percentiles with the checkpoint at most once a second.

    Each lag is also split into the time until its batch began (`wait`: commit, notification,
    the projector busy with the batch before, and `paced`, the part the projector held the batch
    back on purpose), reading and applying the batch (`apply`: the log query, decoding, the
    projection) and writing it (`write`: the read store's bulk writes).

    Lags are counted in log-spaced histograms, one per second of the window: sorting every event
    of the window once a second cost the projector about 3 % of a core at 2,000 events/s (issue 7
    step 108), and a lag monitor needs percentiles to a per cent, not to the microsecond. The
    maximum is exact; the window covers the last `seconds`, to a second."""

    def __init__(self, seconds: float = WINDOW, clock=time.time):
        self._seconds, self._clock = seconds, clock
        self._slots: deque[_Second] = deque()
        self._closed = _Second(0)  # the slots before the newest one, summed: a report merges two, not thirty
        self._reported = 0.0

    def add(self, written_at: float, recorded: list[float], began: float | None = None,
            applied_at: float | None = None, paced: float = 0.0) -> None:
        if not recorded:
            return
        began = written_at if began is None else began
        applied_at = began if applied_at is None else applied_at
        second = math.floor(written_at)
        if not self._slots or self._slots[-1].second != second:
            if self._slots:
                self._closed.merge(self._slots[-1], 1)
            self._slots.append(_Second(second))
        slot = self._slots[-1]
        slot.lag.update(_bucket((written_at - at) * 1000) for at in recorded)
        slot.wait.update(_bucket((began - at) * 1000) for at in recorded)
        slot.top = max(slot.top, (written_at - min(recorded)) * 1000)
        events = len(recorded)
        for histogram, part in zip(slot.parts, (paced, applied_at - began, written_at - applied_at)):
            histogram[_bucket(part * 1000)] += events
        slot.events += events
        slot.batches += 1

    def due(self) -> dict | None:
        """The window's summary when a second has passed since the last one, else None."""
        now = self._clock()
        if now - self._reported < 1.0:
            return None
        self._reported = now
        while len(self._slots) > 1 and self._slots[0].second + 1 <= now - self._seconds:
            self._closed.merge(self._slots.popleft(), -1)
        if self._slots and self._slots[0].second + 1 <= now - self._seconds:
            self._slots.clear()  # the newest slot is out of the window too (`_closed` is empty by now)
        window = _Second(0)
        window.merge(self._closed, 1)
        if self._slots:
            window.merge(self._slots[-1], 1)
        if not window.events:
            return {"lag_events": 0, "lag_p50_ms": None, "lag_p99_ms": None, "lag_max_ms": None}
        top = max(slot.top for slot in self._slots)
        summary = {"lag_events": window.events, **_percentiles("lag", window.lag, window.events, top),
                   "lag_max_ms": round(top, 3), "lag_window_s": self._seconds,
                   **_percentiles("lag_wait", window.wait, window.events, top),
                   "lag_batches": window.batches}
        # The parts a whole batch shares: percentiles over its events (a batch weighs its event count).
        for part, histogram in zip(PARTS[1:], window.parts):
            summary.update(_percentiles(f"lag_{part}", histogram, window.events, top))
        return summary


class _Second:
    """The events applied in one second (or, summed, in several): histograms and counts."""
    __slots__ = ("second", "lag", "wait", "parts", "top", "events", "batches")

    def __init__(self, second: int):
        self.second = second
        self.lag, self.wait = Counter(), Counter()
        self.parts = (Counter(), Counter(), Counter())  # paced, apply, write: bucket -> events
        self.top, self.events, self.batches = 0.0, 0, 0

    def merge(self, other: "_Second", sign: int) -> None:
        """Adds (`sign` 1) or takes away (-1) `other`'s counts; `top` is per slot, never summed."""
        for mine, theirs in zip((self.lag, self.wait, *self.parts), (other.lag, other.wait, *other.parts)):
            if sign > 0:
                mine.update(theirs)
            else:
                mine.subtract(theirs)
                for bucket in [b for b, n in mine.items() if n <= 0]:
                    del mine[bucket]
        self.events += sign * other.events
        self.batches += sign * other.batches


def _bucket(ms: float) -> int:
    """Log-spaced bucket of a duration in ms; everything under a microsecond (or negative, a clock
    step between processes) shares the lowest."""
    return -1 if ms < 0.001 else int(math.log2(ms * 1000) * STEPS_PER_DOUBLING)


def _value(bucket: int) -> float:
    """A bucket's middle, in ms (geometric: the relative error is the same at both edges)."""
    return 0.0 if bucket < 0 else 2 ** ((bucket + 0.5) / STEPS_PER_DOUBLING) / 1000


def _percentiles(prefix: str, histogram: Counter, total: int, top: float) -> dict:
    """`<prefix>_p50_ms` and `<prefix>_p99_ms` (nearest rank) of the histogram, never above `top`."""
    found, seen = [], 0
    targets = [max(1, math.ceil(p / 100 * total)) for p in (50, 99)]
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        while targets and seen >= targets[0]:
            found.append(round(min(_value(bucket), top), 3))
            targets.pop(0)
    found += [None, None]
    return {f"{prefix}_p50_ms": found[0], f"{prefix}_p99_ms": found[1]}


def lag_report(catalogue: ReadModelCatalogue, sources: dict[str, Application]) -> list[dict]:
    """One row per live read model and source the given applications feed."""
    rows = []
    heads = {name: app.recorder.max_notification_id() or 0 for name, app in sources.items()}
    for row in catalogue.status():
        if not row["active"] or row["source"] not in sources:
            continue
        head, position = heads[row["source"]], row["position"]
        rows.append({"projection": row["collection"].rpartition("_g")[0], "collection": row["collection"],
                     "source": row["source"], "position": position, "head": head, "behind": max(0, head - position),
                     "waiting_s": _waiting(sources[row["source"]], position) if head > position else 0.0,
                     "last_lag_ms": row.get("lag_ms"),
                     **{k: v for k, v in row.items() if k.startswith("lag_") and k != "lag_ms"}})
    return rows


def _waiting(app: Application, position: int) -> float | None:
    """Seconds since the oldest event the read model has not applied was recorded."""
    notifications = app.recorder.select_notifications(start=position + 1, limit=1)
    if not notifications:
        return 0.0
    recorded = app.mapper.to_domain_event(notifications[0]).timestamp.timestamp()
    return round(max(0.0, time.time() - recorded), 3)


def format_report(rows: list[dict]) -> list[str]:
    ms = lambda v: "-" if v is None else f"{v:.1f} ms"  # noqa: E731
    lines = [f"{'projection':<14} {'source':<14} {'position':>9} {'head':>9} {'behind':>7} {'waiting':>9} "
             f"{'last lag':>10} {'p50 lag':>10} {'p99 lag':>10}  (p50/p99: events of the last {WINDOW:g} s)"]
    for r in rows:
        lines.append(f"{r['projection']:<14} {r['source']:<14} {r['position']:>9} {r['head']:>9} {r['behind']:>7} "
                     f"{r['waiting_s']:>7.2f} s {ms(r['last_lag_ms']):>10} {ms(r.get('lag_p50_ms')):>10} "
                     f"{ms(r.get('lag_p99_ms')):>10}")
    return lines
