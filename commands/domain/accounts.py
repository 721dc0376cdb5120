"""User accounts of the local identity provider, and the email-address claim that keeps emails unique."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate

SIGNUP = "signup"
RESET = "reset"
MAX_CODE_ATTEMPTS = 5
MAX_USED_REFRESH_HASHES = 20
# Roles beyond "owner of one's own devices": auditors replay and verify, analysts query every
# read model, admins see operational detail. Granted and revoked only by an operator (the CLI).
ROLES = ("auditor", "analyst", "admin")


class UserAccount(AuditedAggregate):
    """A person who signs in; holds the password hash, one-time codes and login sessions."""

    @staticmethod
    def create_id(username: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/iotcloud/users/{username.lower()}")

    @event("SignedUp")
    def __init__(self, username: str, email: str, given_name: str, family_name: str, password_hash: str):
        self.username = username
        self.email = email
        self.given_name = given_name
        self.family_name = family_name
        self.password_hash = password_hash
        self.confirmed = False
        self.codes: dict[str, dict] = {}
        self.failed_logins: list[float] = []
        self.sessions: dict[str, dict] = {}
        self.roles: list[str] = []

    @event("ConfirmationCodeIssued")
    def issue_code(self, purpose: str, code_hash: str, expires_at: float) -> None:
        self.codes[purpose] = {"hash": code_hash, "expires_at": expires_at, "attempts": 0}

    @event("CodeAttempted")
    def attempt_code(self, purpose: str) -> None:
        """Recorded before a guess is compared, so every guess counts even under concurrency."""
        code = self.codes.get(purpose)
        if code is not None:
            code["attempts"] += 1

    @event("CodeRejected")
    def reject_code(self, purpose: str) -> None:
        """Kept to replay events stored before CodeAttempted replaced it."""
        code = self.codes.get(purpose)
        if code is not None:
            code["attempts"] += 1

    @event("Confirmed")
    def confirm(self) -> None:
        self.confirmed = True
        self.codes.pop(SIGNUP, None)

    @event("PasswordReset")
    def reset_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        self.codes.pop(RESET, None)
        self.sessions.clear()
        self.failed_logins.clear()

    @event("LoginFailed")
    def fail_login(self, at: float) -> None:
        """Kept to replay old events; failed logins are now throttled in memory (commands/identity/throttle.py)
        so an attacker's guesses neither lock the owner out nor write to the store."""
        self.failed_logins.append(at)

    @event("SessionStarted")
    def start_session(self, session_id: str, refresh_hash: str, expires_at: float) -> None:
        self.sessions[session_id] = {"refresh_hash": refresh_hash, "expires_at": expires_at}
        self.failed_logins.clear()

    @event("SessionRefreshed")
    def rotate_session(self, session_id: str, refresh_hash: str, expires_at: float) -> None:
        # Remember rotated-out hashes: only a token we really issued can prove reuse and end the session.
        previous = self.sessions.get(session_id) or {}
        used = [*previous.get("used_hashes", ()), previous["refresh_hash"]] if previous else []
        self.sessions[session_id] = {"refresh_hash": refresh_hash, "expires_at": expires_at,
                                     "used_hashes": used[-MAX_USED_REFRESH_HASHES:]}

    @event("SessionEnded")
    def end_session(self, session_id: str, reason: str) -> None:
        self.sessions.pop(session_id, None)

    @event("RoleGranted")
    def grant_role(self, role: str, roles: list[str]) -> None:
        """`roles` is the whole set after the grant, so a read model needs no earlier event to show it."""
        self.roles = list(roles)

    @event("RoleRevoked")
    def revoke_role(self, role: str, roles: list[str]) -> None:
        self.roles = list(roles)

    def usable_code(self, purpose: str, now: float) -> dict | None:
        code = self.codes.get(purpose)
        if code is None or code["expires_at"] < now or code["attempts"] >= MAX_CODE_ATTEMPTS:
            return None
        return code


class EmailClaim(AuditedAggregate):
    """Makes an email address belong to one account; created in the same transaction as the account."""

    @staticmethod
    def create_id(email: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/iotcloud/emails/{email.strip().lower()}")

    @event("Claimed")
    def __init__(self, email: str, username: str):
        self.email = email
        self.username = username
