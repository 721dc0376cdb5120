"""What an administrator lists: every account and every device, from the read models (never aggregates)."""

from __future__ import annotations

from pymongo.database import Database

from queries.read_models import DEVICE_LIST, USERS, ReadModelCatalogue
from queries.timestamps import normalised

MAX_PAGE = 200
USER_FIELDS = {"_id": 0, "username": 1, "username_key": 1, "email": 1, "given_name": 1, "family_name": 1,
               "status": 1, "roles": 1, "signed_up_at": 1}
DEVICE_FIELDS = {"_id": 0, "device_id": 1, "owner": 1, "name": 1, "connection": 1, "last_seen": 1,
                 "registered_at": 1}


class AdminQueries:
    """Pages ordered by a unique key; `after` is the last key of the previous page (a stable cursor)."""

    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def users(self, after: str | None = None, limit: int = 50) -> dict:
        limit = max(1, min(int(limit), MAX_PAGE))
        query = {"username_key": {"$gt": after.lower()}} if after else {}
        docs = self._page(USERS, query, USER_FIELDS, "username_key", limit)
        items = [normalised({k: v for k, v in doc.items() if k != "username_key"}) for doc in docs]
        return self._answer(items, docs, "username_key", limit)

    def devices(self, after: str | None = None, limit: int = 50) -> dict:
        limit = max(1, min(int(limit), MAX_PAGE))
        query = {"device_id": {"$gt": after}} if after else {}
        docs = self._page(DEVICE_LIST, query, DEVICE_FIELDS, "device_id", limit)
        items = [normalised({**doc, "online": doc.pop("connection", None) == "online"}) for doc in docs]
        return self._answer(items, docs, "device_id", limit)

    def _page(self, model: str, query: dict, fields: dict, key: str, limit: int) -> list[dict]:
        cursor = self._catalogue.collection(model).find(query, fields).sort([(key, 1)]).limit(limit + 1)
        return list(cursor)

    @staticmethod
    def _answer(items: list[dict], docs: list[dict], key: str, limit: int) -> dict:
        more = len(items) > limit
        items = items[:limit]
        return {"items": items, "next": docs[limit - 1][key] if more else None}
