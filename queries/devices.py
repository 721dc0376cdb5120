"""Device-list queries; they read the projection only and never load aggregates."""

from __future__ import annotations

from pymongo.database import Database

from commands.errors import DeviceNotFound
from queries.read_models import DEVICE_LIST, ReadModelCatalogue
from queries.timestamps import normalised

MAX_PAGE = 100


class DeviceListQueries:
    """List, count and look up the devices of one owner."""

    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def list_devices(self, owner: str, limit: int = 50, offset: int = 0) -> list[dict]:
        limit = max(1, min(int(limit), MAX_PAGE))
        cursor = (self._devices().find({"owner": owner}, {"_id": 0, "position": 0})
                  .sort([("name", 1)]).skip(max(0, int(offset))).limit(limit))
        return [normalised(doc) for doc in cursor]

    def count_devices(self, owner: str) -> int:
        return self._devices().count_documents({"owner": owner})

    def get_device(self, owner: str, name: str) -> dict:
        """For display only: decisions (who may call or change a device) use commands.owned_devices,
        because the read store is not the write side's to vouch for."""
        doc = self._devices().find_one({"owner": owner, "name": name}, {"_id": 0, "position": 0})
        if doc is None:
            raise DeviceNotFound(f"device '{name}' is not registered")
        return normalised(doc)

    def _devices(self):
        return self._catalogue.collection(DEVICE_LIST)
