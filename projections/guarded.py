"""Idempotent writes: a document remembers the last event position applied to it."""

from __future__ import annotations

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError


def guarded_set(collection: Collection, doc_id, position: int, fields: dict) -> bool:
    """Applies `fields` unless this document already saw `position`; False when skipped as a replay."""
    try:
        collection.update_one({"_id": doc_id, "position": {"$lt": position}},
                              {"$set": {**fields, "position": position}}, upsert=True)
        return True
    except DuplicateKeyError:
        # The document exists with position >= this one: the event was applied before a crash.
        return False


def guarded_delete(collection: Collection, doc_id, position: int) -> None:
    collection.delete_one({"_id": doc_id, "position": {"$lt": position}})
