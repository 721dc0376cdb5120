"""Idempotent writes: a document remembers the last event position applied to it.

A projector batch goes through a BatchWriter: every event's `set` on one document is merged
(later fields win) and written as one position-guarded upsert, all in one bulk request. Because
events only ever *set* fields, applying the merge of events p1..pN to a document that already
reflects some prefix of them gives the same result as applying the rest one by one; a document
that already reflects pN is left alone (its guard fails and the upsert's insert collides).

A document's first write is an insert when the event that creates it is in the batch (`set(...,
creates=True)`): it skips the lookup an upsert makes, and a document that already exists (a replay
after a crash) makes the insert collide, and only then is it written as the guarded upsert.

The live projector may also *hold* a write back to a later batch (`flush(keep=...)`), so that the
events of both share one write: a device call's document is then written once, finished, instead
of once open and once more with its outcome. The projector saves its checkpoint before the first
event of any held write (`held_from`), so a crash replays what was held.
"""

from __future__ import annotations

import time
from typing import Callable

from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError

DUPLICATE_KEY = 11000


class _Op:
    __slots__ = ("kind", "position", "fields", "first", "since", "recorded", "creates")

    def __init__(self, kind: str, position: int, fields: dict | None, since: float):
        self.kind, self.position, self.fields = kind, position, fields
        self.creates = False  # its first event creates the document: written as an insert
        self.first, self.since = position, since  # its first event's position, and when it was begun
        self.recorded: list[float] = []            # when its events were recorded (for the lag)


class BatchWriter:
    """Collects the writes of one batch of events and flushes them in a single bulk request.

    `carried`: the writes an earlier batch held back (`held`), merged into by this batch's events."""

    def __init__(self, collection: Collection, carried: dict | None = None, clock=time.monotonic):
        self.collection = collection
        self._ops: dict[object, _Op] = carried if carried is not None else {}
        self._clock = clock
        self._noted: float | None = None
        self._attached = False
        self._loose: list[float] = []
        self.recorded: list[float] = []  # after a flush: when the events it wrote (or that wrote nothing) were recorded

    def note(self, recorded_at: float) -> None:
        """The next event to be applied was recorded at `recorded_at`: its writes carry that time."""
        self._settle_note()
        self._noted, self._attached = recorded_at, False

    def set(self, doc_id, position: int, fields: dict, creates: bool = False) -> None:
        """`creates`: this event brings the document into being (a new device call, say), so its first
        write may be an insert; a document that exists already is still written correctly, only slower."""
        op = self._ops.get(doc_id)
        if op is not None and op.kind == "set":
            op.position = position
            op.fields.update(fields)
        else:
            first_write = op is None  # not after a delete of the same document in this batch
            op = self._replace(doc_id, "set", position, dict(fields))
            op.creates = creates and first_write
        self._attach(op)

    def delete(self, doc_id, position: int) -> None:
        self._attach(self._replace(doc_id, "delete", position, None))

    def _replace(self, doc_id, kind: str, position: int, fields: dict | None) -> _Op:
        old = self._ops.get(doc_id)
        op = self._ops[doc_id] = _Op(kind, position, fields, self._clock())
        if old is not None:
            op.first, op.since, op.recorded = old.first, old.since, old.recorded
        return op

    def _attach(self, op: _Op) -> None:
        if self._noted is not None:
            op.recorded.append(self._noted)
            self._attached = True

    def _settle_note(self) -> None:
        if self._noted is not None and not self._attached:
            self._loose.append(self._noted)
        self._noted = None

    @property
    def held(self) -> dict:
        """The writes the last flush kept back (to be carried into the next batch)."""
        return self._ops

    @property
    def held_from(self) -> int | None:
        """The position of the first event of any held write (the checkpoint must stay before it)."""
        return min((op.first for op in self._ops.values()), default=None)

    def flush(self, keep: Callable[[dict], bool] | None = None, longest: float = 0.0) -> int:
        """Writes every collected document, except those `keep(fields)` wants held that were begun
        less than `longest` seconds ago: they stay for the next batch. Returns how many were written."""
        self._settle_note()
        self.recorded, self._loose = self._loose, []
        now, requests, kept = self._clock(), [], {}
        inserts: dict[int, tuple[object, _Op]] = {}  # request index -> the insert's document and op
        for doc_id, op in self._ops.items():
            if keep is not None and op.kind == "set" and now - op.since < longest and keep(op.fields):
                kept[doc_id] = op
                continue
            if op.kind == "set" and op.creates:
                inserts[len(requests)] = (doc_id, op)
                requests.append(InsertOne({"_id": doc_id, **op.fields, "position": op.position}))
            elif op.kind == "set":
                requests.append(_upsert(doc_id, op))
            else:
                requests.append(DeleteOne({"_id": doc_id, "position": {"$lt": op.position}}))
            self.recorded.extend(op.recorded)
        self._ops = kept
        if not requests:
            return 0
        collided = self._write(requests, inserts)
        if collided:
            # The document exists: a replay after a crash, or a rebuild over what a live projector wrote.
            # The guarded upsert applies what it does not reflect yet and leaves a later one alone.
            self._write([_upsert(doc_id, op) for doc_id, op in collided], {})
        return len(requests)

    def _write(self, requests: list, inserts: dict) -> list:
        """One unordered bulk request; returns the inserts that met an existing document."""
        try:
            self.collection.bulk_write(requests, ordered=False)
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            # Duplicate keys of guarded writes are documents that already reflect a later position: skipped.
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return [inserts[e["index"]] for e in errors if e.get("index") in inserts]
        return []


def _upsert(doc_id, op: _Op) -> UpdateOne:
    return UpdateOne({"_id": doc_id, "position": {"$lt": op.position}},
                     {"$set": {**op.fields, "position": op.position}}, upsert=True)
