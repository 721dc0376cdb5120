"""Command-status queries over the commands read model."""

from __future__ import annotations

from pymongo.database import Database

from commands.device_control import CommandNotFound
from commands.domain.device_commands import QUEUED, SENT
from queries.read_models import COMMANDS, ReadModelCatalogue
from queries.timestamps import normalised


class CommandQueries:
    """A caller's own commands, newest first; open commands for gateway recovery."""

    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def get_command(self, owner: str, command_id: str) -> dict:
        doc = self._commands().find_one({"_id": command_id, "owner": owner}, {"_id": 0, "position": 0})
        if doc is None:
            raise CommandNotFound(f"no command {command_id}")
        return normalised(doc)

    def open_command_ids(self) -> list[str]:
        return [doc["_id"] for doc in self._commands().find({"status": {"$in": [QUEUED, SENT]}}, {"_id": 1})]

    def open_lines(self) -> list[tuple[str, str, str]]:
        """(command id, device id, api) of every call not finished yet."""
        return [(doc["_id"], doc.get("device_id", ""), doc.get("api", "")) for doc in self._commands().find(
            {"status": {"$in": [QUEUED, SENT]}}, {"_id": 1, "device_id": 1, "api": 1})]

    def _commands(self):
        return self._catalogue.collection(COMMANDS)
