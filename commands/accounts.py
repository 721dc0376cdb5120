"""Accounts: the event-sourced user store behind the local identity provider."""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from commands.domain.accounts import ROLES, EmailClaim, UserAccount
from commands.errors import ConcurrentChange, EmailTaken, UnknownRole, UnknownUser, UsernameTaken


class Accounts(Application):
    """Loads and saves user accounts; uniqueness of usernames and emails comes from aggregate ids."""

    env = {"AGGREGATE_CACHE_MAXSIZE": "5000"}

    def create(self, account: UserAccount, email_claim: EmailClaim) -> int:
        if self._exists(UserAccount.create_id(account.username)):
            raise UsernameTaken(f"username '{account.username}' is already registered")
        if self._exists(email_claim.id):
            raise EmailTaken("that email address is already used")
        try:
            return self.save(account, email_claim)[-1].notification.id
        except IntegrityError:
            # Lost a race with a concurrent sign-up: tell which claim was taken.
            if self._exists(email_claim.id) and not self._exists(account.id):
                raise EmailTaken("that email address is already used") from None
            raise UsernameTaken(f"username '{account.username}' is already registered") from None

    def account(self, username: str) -> UserAccount:
        try:
            return self.repository.get(UserAccount.create_id(username))
        except AggregateNotFoundError:
            raise UnknownUser(f"no user '{username}'") from None

    def username_for_email(self, email: str) -> str | None:
        try:
            return self.repository.get(EmailClaim.create_id(email)).username
        except AggregateNotFoundError:
            return None

    def store(self, account: UserAccount) -> int:
        try:
            return self.save(account)[-1].notification.id
        except IntegrityError:
            raise ConcurrentChange() from None

    def grant_role(self, username: str, role: str) -> int | None:
        """Records RoleGranted; None (nothing recorded) when the account holds the role already."""
        account = self.account(username)
        roles = set(getattr(account, "roles", ()))
        if _known(role) in roles:
            return None
        account.grant_role(role, sorted(roles | {role}))
        return self.store(account)

    def revoke_role(self, username: str, role: str) -> int | None:
        """Records RoleRevoked; None (nothing recorded) when the account does not hold the role."""
        account = self.account(username)
        roles = set(getattr(account, "roles", ()))
        if _known(role) not in roles:
            return None
        account.revoke_role(role, sorted(roles - {role}))
        return self.store(account)

    def roles(self, username: str) -> frozenset[str]:
        """The account's roles as the event store has them now: the cached aggregate is fast-forwarded
        to its last event, so a grant or revoke committed before this call is always seen."""
        try:
            return frozenset(getattr(self.account(username), "roles", ()))
        except UnknownUser:
            return frozenset()

    def _exists(self, aggregate_id) -> bool:
        try:
            self.repository.get(aggregate_id)
            return True
        except AggregateNotFoundError:
            return False


def _known(role: str) -> str:
    if role not in ROLES:
        raise UnknownRole(f"no role '{role}'; roles are {', '.join(ROLES)}")
    return role
