"""The analysts' view of the device-list read model: every owner's devices (or one owner's),
filtered by connection, paged by device id (unique and indexed) with an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import re

from pymongo.database import Database

from commands.errors import ValidationFailed
from queries.history import eq
from queries.read_models import DEVICE_LIST, ReadModelCatalogue
from queries.timestamps import normalised

CONNECTIONS = ("online", "offline")
DEVICE_ID = re.compile(r"^[0-9a-f]{1,64}$")


class FleetAnalytics:
    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def page(self, owner: str | None, connection: str | None, limit: int, cursor: str | None
             ) -> tuple[list[dict], str | None]:
        query: dict = {"device_id": {"$gt": _after(cursor) if cursor else ""}}
        if owner is not None:
            query["owner"] = eq(owner)
        if connection is not None:
            if connection not in CONNECTIONS:
                raise ValidationFailed(f"'connection' must be one of {', '.join(CONNECTIONS)}", field="connection")
            query["connection"] = eq(connection)
        docs = list(self._catalogue.collection(DEVICE_LIST).find(query, {"_id": 0, "position": 0})
                    .sort([("device_id", 1)]).limit(limit + 1))
        more = len(docs) > limit
        docs = docs[:limit]
        following = base64.urlsafe_b64encode(docs[-1]["device_id"].encode()).decode().rstrip("=") if more else None
        for doc in docs:
            (doc.get("certificate") or {}).pop("pem", None)  # analysts see the certificate's facts, not its text
        return [normalised(doc) for doc in docs], following


def _after(cursor: str) -> str:
    try:
        device_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        device_id = ""
    if not DEVICE_ID.match(device_id):
        raise ValidationFailed("'next' is not a cursor this API handed out", field="next")
    return device_id
