"""Names and locations of the read models in MongoDB; the one place that defines them.

Each projection writes into generation-numbered collections (`device_list_g1`, ...). A rebuild
fills the next generation from the whole event store and then flips the catalogue to it, so
readers never see a half-built read model and no collection ever needs renaming.
"""

from __future__ import annotations

import time

from pymongo.database import Database

DEVICE_LIST = "device_list"
USERS = "users"
CATALOGUE = "read_model_catalogue"
CHECKPOINTS = "projection_checkpoints"


def collection_name(projection: str, generation: int) -> str:
    return f"{projection}_g{generation}"


class ReadModelCatalogue:
    """Which generation of each read model is live, and how far each has projected."""

    def __init__(self, db: Database):
        self._db = db

    def active_generation(self, projection: str) -> int:
        doc = self._db[CATALOGUE].find_one({"_id": projection})
        return int(doc["active"]) if doc else 1

    def collection(self, projection: str, generation: int | None = None):
        generation = self.active_generation(projection) if generation is None else generation
        return self._db[collection_name(projection, generation)]

    def activate(self, projection: str, generation: int) -> None:
        self._db[CATALOGUE].update_one({"_id": projection}, {"$set": {"active": generation}}, upsert=True)

    def position(self, projection: str, generation: int, source: str) -> int:
        doc = self._db[CHECKPOINTS].find_one({"_id": collection_name(projection, generation)})
        return int((doc or {}).get("positions", {}).get(source, 0))

    def advance(self, projection: str, generation: int, source: str, position: int) -> None:
        self._db[CHECKPOINTS].update_one({"_id": collection_name(projection, generation)},
                                         {"$max": {f"positions.{source}": position}}, upsert=True)

    def wait_for(self, projection: str, source: str, position: int, timeout: float) -> bool:
        """Blocks until the live read model has applied `position` of `source` (read-your-writes)."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            if self.position(projection, self.active_generation(projection), source) >= position:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def status(self) -> list[dict]:
        rows = []
        for doc in self._db[CHECKPOINTS].find({}):
            projection, _, generation = doc["_id"].rpartition("_g")
            rows.append({"collection": doc["_id"], "projection": projection, "generation": int(generation),
                         "active": self.active_generation(projection) == int(generation),
                         "positions": doc.get("positions", {})})
        return sorted(rows, key=lambda r: r["collection"])
