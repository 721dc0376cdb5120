"""Notification queries: one owner's notifications, newest first, with a cursor."""

from __future__ import annotations

import base64

from pymongo.database import Database

from commands.domain.notifications import CHANNELS, STATES
from commands.errors import ValidationFailed
from queries.read_models import NOTIFICATIONS, ReadModelCatalogue
from queries.timestamps import normalised

MAX_PAGE = 100
HIDDEN = {"position": 0, "requested_ts": 0, "owner": 0}


def encode_cursor(doc: dict) -> str:
    return base64.urlsafe_b64encode(f"{doc['requested_ts']!r}|{doc['notification_id']}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor[:200] + "=" * (-len(cursor[:200]) % 4)).decode()
        ts, _, nid = raw.partition("|")
        return float(ts), nid
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("'cursor' is not one this API gave out", field="cursor") from None


class NotificationQueries:
    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def list(self, owner: str, device: str | None = None, state: str | None = None, channel: str | None = None,
             limit: int = 50, cursor: str | None = None) -> tuple[list[dict], str | None]:
        """A page of `owner`'s notifications and the cursor of the next page (None at the end)."""
        query: dict = {"owner": owner}
        if device:
            query["device_name"] = device
        if state:
            if state not in STATES:
                raise ValidationFailed(f"'state' must be one of {', '.join(STATES)}", field="state")
            query["state"] = state
        if channel:
            if channel not in CHANNELS:
                raise ValidationFailed(f"'channel' must be one of {', '.join(CHANNELS)}", field="channel")
            query["channel"] = channel
        if cursor:
            ts, nid = decode_cursor(cursor)
            query["$or"] = [{"requested_ts": {"$lt": ts}}, {"requested_ts": ts, "notification_id": {"$lt": nid}}]
        limit = max(1, min(int(limit), MAX_PAGE))
        docs = list(self._collection().find(query).sort([("requested_ts", -1), ("notification_id", -1)]).limit(limit + 1))
        following = encode_cursor(docs[limit - 1]) if len(docs) > limit else None
        return [self._shown(doc) for doc in docs[:limit]], following

    def get(self, owner: str, notification_id: str) -> dict | None:
        doc = self._collection().find_one({"_id": notification_id, "owner": owner})
        return self._shown(doc) if doc else None

    @staticmethod
    def _shown(doc: dict) -> dict:
        doc = {k: v for k, v in doc.items() if k not in HIDDEN and k != "_id"}
        return normalised(doc)

    def _collection(self):
        return self._catalogue.collection(NOTIFICATIONS)
