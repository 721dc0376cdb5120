"""Idempotent writes: a document remembers the last event position applied to it.

A projector batch goes through a BatchWriter: every event's `set` on one document is merged
(later fields win) and written as one position-guarded upsert, all in one bulk request. Because
events only ever *set* fields, applying the merge of events p1..pN to a document that already
reflects some prefix of them gives the same result as applying the rest one by one; a document
that already reflects pN is left alone (its guard fails and the upsert's insert collides).
"""

from __future__ import annotations

from pymongo import DeleteOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


class BatchWriter:
    """Collects the writes of one batch of events and flushes them in a single bulk request."""

    def __init__(self, collection: Collection):
        self.collection = collection
        self._ops: dict[object, list] = {}

    def set(self, doc_id, position: int, fields: dict) -> None:
        op = self._ops.get(doc_id)
        if op is not None and op[0] == "set":
            op[1] = position
            op[2].update(fields)
        else:
            self._ops[doc_id] = ["set", position, dict(fields)]

    def delete(self, doc_id, position: int) -> None:
        self._ops[doc_id] = ["delete", position, None]

    def flush(self) -> int:
        requests = []
        for doc_id, (kind, position, fields) in self._ops.items():
            guard = {"_id": doc_id, "position": {"$lt": position}}
            if kind == "set":
                requests.append(UpdateOne(guard, {"$set": {**fields, "position": position}}, upsert=True))
            else:
                requests.append(DeleteOne(guard))
        self._ops.clear()
        if not requests:
            return 0
        try:
            self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as error:
            # Duplicate keys are documents that already reflect a later position: a replay, skipped.
            if any(e.get("code") != DUPLICATE_KEY for e in error.details.get("writeErrors", [])):
                raise
        return len(requests)
