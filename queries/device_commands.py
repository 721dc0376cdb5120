"""Command-status queries over the history read model, where each device call has one document."""

from __future__ import annotations

from pymongo.database import Database

from commands.device_control import CommandNotFound
from commands.domain.device_commands import QUEUED, SENT
from queries.read_models import HISTORY, ReadModelCatalogue
from queries.timestamps import normalised

CALL = "command"  # the history document's `event` for a device call
OPEN_STATES = (QUEUED, SENT)  # a call in either state is not finished
# Open calls, one query per open state: `$eq` on `state` is served by the (state, key) index (in
# nx-27017 too, where `$in` or a bare value scans); device events never hold either state.
OPEN = tuple({"state": {"$eq": state}} for state in OPEN_STATES)
# A command's status, by its field name, from the history field that holds it.
STATUS_FIELDS = {"command_id": "command_id", "device_id": "device_id", "owner": "owner",
                 "device_name": "device_name", "api": "api", "params": "request", "status": "state",
                 "timeout": "timeout", "expires_at": "expires_at", "requested_at": "requested_at",
                 "requested_by": "actor", "correlation_id": "correlation_id", "sent_at": "sent_at",
                 "completed_at": "completed_at", "result": "result", "error": "error"}
_PROJECTION = {field: 1 for field in STATUS_FIELDS.values()} | {"_id": 0}


class CommandQueries:
    """A caller's own commands; open commands for gateway recovery."""

    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def get_command(self, owner: str, command_id: str) -> dict:
        doc = self._calls().find_one({"_id": command_id, "owner": owner, "event": CALL}, _PROJECTION)
        if doc is None:
            raise CommandNotFound(f"no command {command_id}")
        return normalised({name: doc.get(field) for name, field in STATUS_FIELDS.items()})

    def open_command_ids(self) -> list[str]:
        return [doc["_id"] for doc in self._open({"_id": 1})]

    def open_lines(self) -> list[tuple[str, str, str]]:
        """(command id, device id, api) of every call not finished yet."""
        return [(doc["_id"], doc.get("device_id", ""), doc.get("api", ""))
                for doc in self._open({"_id": 1, "device_id": 1, "api": 1})]

    def _open(self, fields: dict):
        calls = self._calls()
        for query in OPEN:
            yield from calls.find(query, fields)

    def _calls(self):
        return self._catalogue.collection(HISTORY)
