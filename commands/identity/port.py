"""The identity-provider port: local (embedded default) or Cognito adapters implement it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TokenSet:
    """What a login or refresh returns; `refresh_token` rotates on every refresh."""

    access_token: str
    refresh_token: str
    id_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request. `user_id` is the provider's immutable id where it has one
    (Cognito's `sub`); the local provider's usernames are immutable already and are the id."""

    username: str
    session_id: str
    user_id: str = ""

    def __post_init__(self):
        if not self.user_id:
            object.__setattr__(self, "user_id", self.username)

    @property
    def owner(self) -> str:
        """The key devices are owned by."""
        return self.user_id


class Notifier(ABC):
    """Delivers email and SMS (the embedded default writes them to the local outbox)."""

    @abstractmethod
    def send_email(self, to: str, subject: str, body: str) -> None: ...

    @abstractmethod
    def send_sms(self, to: str, body: str) -> None: ...


class IdentityProvider(ABC):
    """Sign-up, confirmation, login, token refresh and revocation, password reset."""

    @abstractmethod
    def sign_up(self, username: str, password: str, email: str, given_name: str, family_name: str) -> int: ...

    @abstractmethod
    def confirm_sign_up(self, username: str, code: str) -> int: ...

    @abstractmethod
    def resend_confirmation_code(self, username: str) -> None: ...

    @abstractmethod
    def login(self, username: str, password: str, client: str = "") -> TokenSet:
        """`client` (the caller's address) scopes the failed-login throttle, so others cannot slow the owner."""

    @abstractmethod
    def refresh(self, refresh_token: str) -> TokenSet: ...

    @abstractmethod
    def logout(self, principal: Principal) -> None: ...

    @abstractmethod
    def logout_everywhere(self, principal: Principal) -> None:
        """Ends every session of the principal's user; returns once no API process accepts any of their
        access or refresh tokens any more."""

    @abstractmethod
    def forgot_password(self, username: str | None = None, email: str | None = None) -> None:
        """Sends a reset code if the account exists; answers the same either way."""

    @abstractmethod
    def confirm_forgot_password(self, username: str | None, code: str, new_password: str,
                                email: str | None = None) -> None:
        """The account is named by `email` when given, else by `username`."""

    @abstractmethod
    def authenticate(self, access_token: str) -> Principal: ...

    @abstractmethod
    def jwks(self) -> dict: ...

    def settle(self, timeout: float = 10.0) -> bool:
        """Waits for work deferred past the answers (codes, notices); True when none is left."""
        return True
