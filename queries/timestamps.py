"""Timestamps in read-model documents, always as timezone-aware datetimes.

Real MongoDB hands back BSON dates; the embedded nx-27017 stand-in returns some of them as
naive ISO strings (after a `$set` on an existing document). Queries normalise both.
"""

from __future__ import annotations

import datetime as dt

TIME_FIELDS = ("registered_at", "updated_at", "last_seen", "requested_at", "sent_at", "completed_at",
               "expires_at", "signed_up_at", "next_attempt_at", "failed_at", "refused_at")


def normalised(doc: dict | None) -> dict | None:
    if doc is None:
        return None
    for name in TIME_FIELDS:
        value = doc.get(name)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        if name in doc:
            doc[name] = value
    return doc
