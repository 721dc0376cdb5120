"""A version of one owner's device list, for clients that wait for it to change (the web app's live view)."""

from __future__ import annotations

from pymongo.database import Database

from queries.read_models import DEVICE_LIST, ReadModelCatalogue


class DeviceListVersions:
    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def version(self, owner: str) -> str:
        """Changes whenever a device of `owner` is registered, changed (presence, certificate) or removed:
        the projection's position only grows, and a removal lowers the count."""
        devices = self._catalogue.collection(DEVICE_LIST)
        newest = devices.find_one({"owner": owner}, {"_id": 0, "position": 1}, sort=[("position", -1)])
        return f"{devices.count_documents({'owner': owner})}.{(newest or {}).get('position', 0)}"
