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
        self._lags: deque[tuple] = deque()
        self._reported = 0.0

    def add(self, written_at: float, recorded: list[float], began: float | None = None,
            applied_at: float | None = None, paced: float = 0.0) -> None:
        began = written_at if began is None else began
        applied_at = began if applied_at is None else applied_at
        apply, write = (applied_at - began) * 1000, (written_at - applied_at) * 1000
        self._lags.extend((written_at, (written_at - at) * 1000, (began - at) * 1000, paced * 1000, apply, write)
                          for at in recorded)

    def due(self) -> dict | None:
        """The window's summary when a second has passed since the last one, else None."""
        now = self._clock()
        if now - self._reported < 1.0:
            return None
        self._reported = now
        while self._lags and self._lags[0][0] < now - self._seconds:
            self._lags.popleft()
        if not self._lags:
            return {"lag_events": 0, "lag_p50_ms": None, "lag_p99_ms": None, "lag_max_ms": None}
        lags = sorted(row[1] for row in self._lags)
        summary = {"lag_events": len(lags), "lag_p50_ms": _pick(lags, 50), "lag_p99_ms": _pick(lags, 99),
                   "lag_max_ms": round(lags[-1], 3), "lag_window_s": self._seconds}
        for i, part in enumerate(PARTS, 2):
            values = sorted(row[i] for row in self._lags)
            summary[f"lag_{part}_p50_ms"], summary[f"lag_{part}_p99_ms"] = _pick(values, 50), _pick(values, 99)
        return summary


def _pick(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    return round(values[max(0, math.ceil(p / 100 * len(values)) - 1)], 3)


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
