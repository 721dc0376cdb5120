"""Projection lag, per projection and source: how far each live read model is behind its event
store (events not yet applied, and how long the oldest of them has waited), and how long the last
applied batch took from its last event's recording to being written (`lag_ms`)."""

from __future__ import annotations

import math
import time
from collections import deque

from eventsourcing.application import Application

from queries.read_models import ReadModelCatalogue


WINDOW = 30.0  # seconds of applied events the lag percentiles cover


PARTS = ("wait", "paced", "apply", "write")  # what each event's lag is made of (see LagWindow)


class LagWindow:
    """Per-event lag (recorded -> written to the read model) of the events applied in the last
    `seconds`; the projector stores its percentiles with the checkpoint at most once a second.

    Each lag is also split into the time until its batch began (`wait`: commit, notification,
    the projector busy with the batch before, and `paced`, the part the projector held the batch
    back on purpose), reading and applying the batch (`apply`: the log query, decoding, the
    projection) and writing it (`write`: the read store's bulk writes)."""

    def __init__(self, seconds: float = WINDOW, clock=time.time):
        self._seconds, self._clock = seconds, clock
        self._lags: deque[tuple[float, float, float]] = deque()  # (written at, lag, wait) per event
        self._batches: deque[tuple[float, int, float, float, float]] = deque()  # (written at, events, paced, apply, write)
        self._reported = 0.0

    def add(self, written_at: float, recorded: list[float], began: float | None = None,
            applied_at: float | None = None, paced: float = 0.0) -> None:
        began = written_at if began is None else began
        applied_at = began if applied_at is None else applied_at
        self._lags.extend((written_at, (written_at - at) * 1000, (began - at) * 1000) for at in recorded)
        if recorded:
            self._batches.append((written_at, len(recorded), paced * 1000, (applied_at - began) * 1000,
                                  (written_at - applied_at) * 1000))

    def due(self) -> dict | None:
        """The window's summary when a second has passed since the last one, else None."""
        now = self._clock()
        if now - self._reported < 1.0:
            return None
        self._reported = now
        for rows in (self._lags, self._batches):
            while rows and rows[0][0] < now - self._seconds:
                rows.popleft()
        if not self._lags:
            return {"lag_events": 0, "lag_p50_ms": None, "lag_p99_ms": None, "lag_max_ms": None}
        lags = sorted(row[1] for row in self._lags)
        waits = sorted(row[2] for row in self._lags)
        summary = {"lag_events": len(lags), "lag_p50_ms": _pick(lags, 50), "lag_p99_ms": _pick(lags, 99),
                   "lag_max_ms": round(lags[-1], 3), "lag_window_s": self._seconds,
                   "lag_wait_p50_ms": _pick(waits, 50), "lag_wait_p99_ms": _pick(waits, 99),
                   "lag_batches": len(self._batches)}
        # The parts a whole batch shares: percentiles over its events (a batch weighs its event count).
        for i, part in enumerate(PARTS[1:], 2):
            summary[f"lag_{part}_p50_ms"], summary[f"lag_{part}_p99_ms"] = _weighted(self._batches, i)
        return summary


def _pick(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    return round(values[max(0, math.ceil(p / 100 * len(values)) - 1)], 3)


def _weighted(batches, index: int) -> tuple[float | None, float | None]:
    """p50 and p99 of the batches' value at `index`, each batch counted once per event it held."""
    rows = sorted((row[index], row[1]) for row in batches)
    total = sum(count for _, count in rows)
    found, seen = [], 0
    targets = [max(1, math.ceil(p / 100 * total)) for p in (50, 99)]
    for value, count in rows:
        seen += count
        while targets and seen >= targets[0]:
            found.append(round(value, 3))
            targets.pop(0)
    return (found + [None, None])[0], (found + [None, None])[1]


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
