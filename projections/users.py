"""The users read model: public profile and status of each account (never the password hash)."""

from __future__ import annotations

from functools import singledispatchmethod

from pymongo import ASCENDING
from pymongo.collection import Collection

from commands.domain.accounts import UserAccount
from projections.guarded import BatchWriter
from queries.read_models import USERS


class UsersProjection:
    """UserAccount.SignedUp / Confirmed / RoleGranted / RoleRevoked -> `users_g<N>`, keyed by account id."""

    name = USERS
    sources = ("Accounts",)

    def prepare(self, users: Collection) -> None:
        users.create_index([("username_key", ASCENDING)], unique=True)
        users.create_index([("email", ASCENDING)])
        users.create_index([("roles", ASCENDING)])

    @singledispatchmethod
    def apply(self, event, position: int, users: BatchWriter) -> None:
        """Sessions, codes and failures stay in the event store."""

    @apply.register
    def _(self, event: UserAccount.SignedUp, position: int, users: BatchWriter) -> None:
        users.set(str(event.originator_id), position, {
            "username": event.username, "username_key": event.username.lower(), "email": event.email,
            "given_name": event.given_name, "family_name": event.family_name, "status": "UNCONFIRMED",
            "signed_up_at": event.timestamp, "roles": []})

    @apply.register
    def _(self, event: UserAccount.Confirmed, position: int, users: BatchWriter) -> None:
        users.set(str(event.originator_id), position, {"status": "CONFIRMED"})

    @apply.register
    def _(self, event: UserAccount.RoleGranted, position: int, users: BatchWriter) -> None:
        users.set(str(event.originator_id), position, {"roles": list(event.roles)})

    @apply.register
    def _(self, event: UserAccount.RoleRevoked, position: int, users: BatchWriter) -> None:
        users.set(str(event.originator_id), position, {"roles": list(event.roles)})
