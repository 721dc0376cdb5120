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
    """The authenticated caller of a request."""

    username: str
    session_id: str


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
    def login(self, username: str, password: str) -> TokenSet: ...

    @abstractmethod
    def refresh(self, refresh_token: str) -> TokenSet: ...

    @abstractmethod
    def logout(self, principal: Principal) -> None: ...

    @abstractmethod
    def forgot_password(self, username: str | None = None, email: str | None = None) -> str: ...

    @abstractmethod
    def confirm_forgot_password(self, username: str, code: str, new_password: str) -> None: ...

    @abstractmethod
    def authenticate(self, access_token: str) -> Principal: ...

    @abstractmethod
    def jwks(self) -> dict: ...
