"""The users read model: public profile and status of each account (never the password hash)."""

from __future__ import annotations

from functools import singledispatchmethod

from pymongo import ASCENDING
from pymongo.collection import Collection

from commands.domain.accounts import UserAccount
from projections.guarded import guarded_set
from queries.read_models import USERS


class UsersProjection:
    """UserAccount.SignedUp / Confirmed -> `users_g<N>`, keyed by lower-cased username."""

    name = USERS
    sources = ("Accounts",)

    def prepare(self, users: Collection) -> None:
        users.create_index([("email", ASCENDING)])
        users.create_index([("account_id", ASCENDING)], unique=True)

    @singledispatchmethod
    def apply(self, event, position: int, users: Collection) -> None:
        """Sessions, codes and failures stay in the event store."""

    @apply.register
    def _(self, event: UserAccount.SignedUp, position: int, users: Collection) -> None:
        guarded_set(users, event.username.lower(), position, {
            "username": event.username, "email": event.email, "given_name": event.given_name,
            "family_name": event.family_name, "status": "UNCONFIRMED", "signed_up_at": event.timestamp,
            "account_id": str(event.originator_id)})

    @apply.register
    def _(self, event: UserAccount.Confirmed, position: int, users: Collection) -> None:
        users.update_one({"account_id": str(event.originator_id), "position": {"$lt": position}},
                         {"$set": {"status": "CONFIRMED", "position": position}})
