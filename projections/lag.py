"""Projection lag, per projection and source: how far each live read model is behind its event
store (events not yet applied, and how long the oldest of them has waited), and how long the last
applied batch took from its last event's recording to being written (`lag_ms`)."""

from __future__ import annotations

import time

from eventsourcing.application import Application

from queries.read_models import ReadModelCatalogue


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
                     "last_lag_ms": row.get("lag_ms")})
    return rows


def _waiting(app: Application, position: int) -> float | None:
    """Seconds since the oldest event the read model has not applied was recorded."""
    notifications = app.recorder.select_notifications(start=position + 1, limit=1)
    if not notifications:
        return 0.0
    recorded = app.mapper.to_domain_event(notifications[0]).timestamp.timestamp()
    return round(max(0.0, time.time() - recorded), 3)


def format_report(rows: list[dict]) -> list[str]:
    lines = [f"{'projection':<16} {'source':<14} {'position':>9} {'head':>9} {'behind':>7} {'waiting':>9} {'last lag':>10}"]
    for r in rows:
        last = "-" if r["last_lag_ms"] is None else f"{r['last_lag_ms']:.1f} ms"
        lines.append(f"{r['projection']:<16} {r['source']:<14} {r['position']:>9} {r['head']:>9} {r['behind']:>7} "
                     f"{r['waiting_s']:>7.2f} s {last:>10}")
    return lines
