"""Nudges: a writer that waits to read its own write asks the projector to read that source now.

The projector lets the events of a short interval share one batch (one write per document and per
checkpoint rather than one per event); a writer waiting for read-your-writes should not wait out
that interval. With a PostgreSQL event store it sends `NOTIFY iotcloud_projection_wanted, '<source>'`
and the projector, which listens there (projections.wakeup), reads that source at once. Other
stores have no nudges: their projector polls, and does not hold batches back.
"""

from __future__ import annotations

import logging

from eventsourcing.application import Application

from projections.wakeup import NUDGE_CHANNEL, uses_postgres

log = logging.getLogger("iotcloud.projections")


class PostgresNudge:
    """`nudge("DeviceControl")`: one pg_notify on a connection of the application's own pool."""

    def __init__(self, app: Application):
        self._datastore = app.recorder.datastore

    def __call__(self, source: str) -> None:
        try:
            with self._datastore.get_connection() as conn:
                conn.execute("SELECT pg_notify(%s, %s)", (NUDGE_CHANNEL, source))
        except Exception as exc:  # noqa: BLE001 - without the nudge the wait is only longer
            log.warning("could not nudge the projector (%s)", exc)


def nudge_for(app: Application) -> PostgresNudge | None:
    return PostgresNudge(app) if uses_postgres(app) else None
