"""Names and locations of the read models in MongoDB; the one place that defines them.

Each projection writes into generation-numbered collections (`device_list_g1`, ...). A rebuild
fills the next generation from the whole event store and then flips the catalogue to it, so
readers never see a half-built read model and no collection ever needs renaming.
"""

from __future__ import annotations

import time
from typing import Callable

from pymongo import UpdateOne
from pymongo.database import Database

DEVICE_LIST = "device_list"
USERS = "users"
NOTIFICATIONS = "notifications"
HISTORY = "history"
CATALOGUE = "read_model_catalogue"
CHECKPOINTS = "projection_checkpoints"
# Read models no projection writes any more: their collections and checkpoints are dropped when a
# projector starts. `commands` held a second document per device call; its history document has it all.
RETIRED = ("commands",)


def collection_name(projection: str, generation: int) -> str:
    return f"{projection}_g{generation}"


def checkpoint_id(projection: str, generation: int, source: str) -> str:
    return f"{collection_name(projection, generation)}:{source}"


GENERATION_TTL = 1.0  # seconds a reader trusts the live generation it looked up (rebuilds are rare)


class ReadModelCatalogue:
    """Which generation of each read model is live, and how far each has projected."""

    def __init__(self, db: Database, generation_ttl: float = GENERATION_TTL):
        self._db = db
        self._ttl = generation_ttl
        self._generations: dict[str, tuple[int, float]] = {}

    def active_generation(self, projection: str) -> int:
        cached = self._generations.get(projection)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        doc = self._db[CATALOGUE].find_one({"_id": projection})
        generation = int(doc["active"]) if doc else 1
        self._generations[projection] = (generation, now + self._ttl)
        return generation

    def collection(self, projection: str, generation: int | None = None):
        generation = self.active_generation(projection) if generation is None else generation
        return self._db[collection_name(projection, generation)]

    def activate(self, projection: str, generation: int) -> None:
        self._db[CATALOGUE].update_one({"_id": projection}, {"$set": {"active": generation}}, upsert=True)
        self._generations.pop(projection, None)

    def position(self, projection: str, generation: int, source: str) -> int:
        doc = self._db[CHECKPOINTS].find_one({"_id": checkpoint_id(projection, generation, source)})
        return int(doc["position"]) if doc else 0

    def advance(self, projection: str, generation: int, source: str, position: int,
                recorded_at: float | None = None, lag: dict | None = None) -> None:
        """`recorded_at`: when the event at `position` was recorded; the checkpoint keeps how long it
        took to become visible (`lag_ms`, event recorded -> read model written) and when; `lag`:
        percentiles of recent events' lags (projections.lag.LagWindow)."""
        self.advance_many([(projection, generation, source, position, recorded_at, lag)])

    def advance_many(self, advances: list[tuple]) -> None:
        """Several `advance`s (tuples of its arguments) in one request: the read models that follow
        one source move their checkpoints together after a batch."""
        now, requests = time.time(), []
        for projection, generation, source, position, recorded_at, lag in advances:
            # One flat document per source: `$max` never moves a checkpoint backwards.
            fields = {"collection": collection_name(projection, generation), "source": source, **(lag or {})}
            if recorded_at is not None:
                fields.update(applied_at=now, lag_ms=round(max(0.0, now - recorded_at) * 1000, 3))
            requests.append(({"_id": checkpoint_id(projection, generation, source)},
                             {"$max": {"position": position}, "$set": fields}))
        if len(requests) == 1:
            self._db[CHECKPOINTS].update_one(*requests[0], upsert=True)
        elif requests:
            self._db[CHECKPOINTS].bulk_write([UpdateOne(*r, upsert=True) for r in requests], ordered=True)

    def forget(self, projection: str, generation: int) -> None:
        self._db[CHECKPOINTS].delete_many({"collection": collection_name(projection, generation)})

    def retire(self, projections=RETIRED) -> list[str]:
        """Drops every generation of read models no projection writes any more, their checkpoints and
        catalogue entries, so status and lag reports stop showing them. Returns the collections dropped."""
        dropped = []
        for projection in projections:
            for generation in sorted(set(self.generations(projection)) | {self.active_generation(projection)}):
                name = collection_name(projection, generation)
                if name in self._db.list_collection_names(filter={"name": name}):
                    self._db.drop_collection(name)
                    dropped.append(name)
                self.forget(projection, generation)
            self._db[CATALOGUE].delete_one({"_id": projection})
            self._generations.pop(projection, None)
        return dropped

    def wait_for(self, projection: str, source: str, position: int, timeout: float,
                 nudge: Callable[[str], None] | None = None) -> bool:
        """Blocks until the live read model has applied `position` of `source` (read-your-writes).

        `nudge(source)`, called once if the read model is behind, asks the projector to hurry."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if self.position(projection, self.active_generation(projection), source) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            if nudge is not None:
                nudge(source)
                nudge = None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def status(self) -> list[dict]:
        rows = []
        for doc in self._db[CHECKPOINTS].find({}).sort([("_id", 1)]):
            projection, _, generation = doc["collection"].rpartition("_g")
            rows.append({"collection": doc["collection"], "source": doc["source"], "position": doc["position"],
                         "active": self.active_generation(projection) == int(generation),
                         **{k: doc.get(k) for k in ("lag_ms", "applied_at", "lag_events", "lag_p50_ms",
                                                    "lag_p99_ms", "lag_max_ms")},
                         **{k: v for k, v in doc.items() if k.startswith("lag_") and k.endswith("_ms")}})
        return rows

    def generations(self, projection: str) -> list[int]:
        names = {doc["collection"] for doc in self._db[CHECKPOINTS].find({"collection": {"$regex": f"^{projection}_g[0-9]+$"}})}
        return sorted(int(name.rpartition("_g")[2]) for name in names)
