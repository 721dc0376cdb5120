"""User-profile queries over the users read model."""

from __future__ import annotations

from pymongo.database import Database

from commands.errors import UnknownUser
from queries.read_models import USERS, ReadModelCatalogue
from queries.timestamps import normalised


class UserQueries:
    """The profile a signed-in user may see about themself."""

    def __init__(self, db: Database):
        self._catalogue = ReadModelCatalogue(db)

    def profile(self, username: str) -> dict:
        doc = self._catalogue.collection(USERS).find_one({"username_key": username.lower()},
                                                         {"_id": 0, "position": 0, "username_key": 0})
        if doc is None:
            raise UnknownUser(f"no profile for '{username}' yet")
        return normalised(doc)
