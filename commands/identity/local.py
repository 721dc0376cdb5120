"""The embedded identity provider: Argon2id passwords, EdDSA JWTs, rotating refresh tokens, codes by notifier."""

from __future__ import annotations

import hmac
import hashlib
import re
import secrets
import time
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from commands.accounts import Accounts
from commands.domain.accounts import RESET, SIGNUP, EmailClaim, UserAccount
from commands.errors import (AlreadyConfirmed, InvalidCode, InvalidCredentials, InvalidToken, NotConfirmed,
                             TooManyAttempts, UnknownEmail, UnknownUser, ValidationFailed)
from commands.identity.port import IdentityProvider, Notifier, Principal, TokenSet
from commands.identity.tokens import TokenIssuer, new_refresh_token, parse_refresh_token

USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+\-]{2,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
SESSION_CHECK = 5.0  # seconds an access token's session is trusted without re-reading the account
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class LocalIdentityProvider(IdentityProvider):
    """Keeps users as event-sourced aggregates in `Accounts`; sends codes through a `Notifier`."""

    def __init__(self, accounts: Accounts, tokens: TokenIssuer, notifier: Notifier, code_key: bytes, *,
                 refresh_ttl: int, code_ttl: int, max_failures: int, lockout: int,
                 hasher: PasswordHasher | None = None, clock=time.time):
        self._accounts = accounts
        self._tokens = tokens
        self._notifier = notifier
        self._code_key = code_key
        self._refresh_ttl = refresh_ttl
        self._code_ttl = code_ttl
        self._max_failures = max_failures
        self._lockout = lockout
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        # Sessions seen alive recently: spares a store read (and eventsourcing's per-aggregate
        # fast-forward lock, which serialises one user's requests) on every authenticated request.
        # Logout and password reset in this process evict at once; other processes within SESSION_CHECK.
        self._live_sessions: dict[tuple[str, str], float] = {}
        # Verified against when the user is unknown, so timing does not reveal which usernames exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    def sign_up(self, username, password, email, given_name, family_name) -> int:
        check_username(username)
        check_password(password)
        check_email(email)
        for field, value in (("given_name", given_name), ("family_name", family_name)):
            if not isinstance(value, str) or not value.strip() or len(value) > 128:
                raise ValidationFailed(f"{field} must be 1-128 characters", field=field)
        account = UserAccount(username=username, email=email.strip(), given_name=given_name.strip(),
                              family_name=family_name.strip(), password_hash=self._hasher.hash(password))
        code = self._issue_code(account, SIGNUP)
        position = self._accounts.create(account, EmailClaim(email=email.strip(), username=username))
        self._send_code(account, code, SIGNUP)
        return position

    def confirm_sign_up(self, username, code) -> int:
        account = self._account_or_invalid_code(username)
        if account.confirmed:
            raise AlreadyConfirmed()
        self._check_code(account, SIGNUP, code)
        account.confirm()
        return self._accounts.store(account)

    def resend_confirmation_code(self, username) -> None:
        account = self._accounts.account(username)
        if account.confirmed:
            raise AlreadyConfirmed()
        code = self._issue_code(account, SIGNUP)
        self._accounts.store(account)
        self._send_code(account, code, SIGNUP)

    def login(self, username, password) -> TokenSet:
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise ValidationFailed("username and password are required")
        try:
            account = self._accounts.account(username)
        except UnknownUser:
            self._verify(self._dummy_hash, password)
            raise InvalidCredentials() from None
        now = self._clock()
        failures = account.recent_failures(now, self._lockout)
        if len(failures) >= self._max_failures:
            raise TooManyAttempts(retry_after=max(1, int(min(failures) + self._lockout - now)))
        if not self._verify(account.password_hash, password):
            account.fail_login(at=now)
            self._accounts.store(account)
            raise InvalidCredentials()
        if not account.confirmed:
            raise NotConfirmed()
        session_id = uuid.uuid4().hex
        refresh, refresh_hash = new_refresh_token(account.username, session_id)
        account.start_session(session_id=session_id, refresh_hash=refresh_hash, expires_at=now + self._refresh_ttl)
        self._accounts.store(account)
        return self._token_set(account, session_id, refresh)

    def refresh(self, refresh_token) -> TokenSet:
        if not isinstance(refresh_token, str):
            raise InvalidToken("refresh_token is required")
        username, session_id, presented_hash = parse_refresh_token(refresh_token)
        try:
            account = self._accounts.account(username)
        except UnknownUser:
            raise InvalidToken("unknown session") from None
        session = account.sessions.get(session_id)
        if session is None or session["expires_at"] < self._clock():
            raise InvalidToken("the session has ended")
        if not hmac.compare_digest(session["refresh_hash"], presented_hash):
            # A rotated-out refresh token came back: assume it was stolen and end the session.
            account.end_session(session_id=session_id, reason="refresh-token-reuse")
            self._accounts.store(account)
            self._live_sessions.pop((account.username.lower(), session_id), None)
            raise InvalidToken("refresh token already used; the session has been revoked")
        refresh, refresh_hash = new_refresh_token(account.username, session_id)
        account.rotate_session(session_id=session_id, refresh_hash=refresh_hash,
                               expires_at=self._clock() + self._refresh_ttl)
        self._accounts.store(account)
        return self._token_set(account, session_id, refresh)

    def logout(self, principal: Principal) -> None:
        self._live_sessions.pop((principal.username.lower(), principal.session_id), None)
        account = self._accounts.account(principal.username)
        if principal.session_id in account.sessions:
            account.end_session(session_id=principal.session_id, reason="logout")
            self._accounts.store(account)

    def forgot_password(self, username=None, email=None) -> str:
        if email is not None:
            if not isinstance(email, str):
                raise ValidationFailed("email must be a string", field="email")
            username = self._accounts.username_for_email(email)
            if username is None:
                raise UnknownEmail()
        if not isinstance(username, str) or not username:
            raise ValidationFailed("username or email is required")
        account = self._accounts.account(username)
        code = self._issue_code(account, RESET)
        self._accounts.store(account)
        self._send_code(account, code, RESET)
        return account.username

    def confirm_forgot_password(self, username, code, new_password) -> None:
        check_password(new_password)
        account = self._account_or_invalid_code(username)
        self._check_code(account, RESET, code)
        account.reset_password(password_hash=self._hasher.hash(new_password))
        self._accounts.store(account)
        for key in [k for k in self._live_sessions if k[0] == account.username.lower()]:
            self._live_sessions.pop(key, None)

    def authenticate(self, access_token) -> Principal:
        claims = self._tokens.verify_access(access_token)
        key = (str(claims["sub"]).lower(), claims["sid"])
        now = self._clock()
        if self._live_sessions.get(key, 0) > now:
            return Principal(username=claims["sub"], session_id=claims["sid"])
        try:
            account = self._accounts.account(claims["sub"])
        except UnknownUser:
            raise InvalidToken("unknown user") from None
        session = account.sessions.get(claims["sid"])
        if session is None or session["expires_at"] < now:
            raise InvalidToken("the session has ended")
        if len(self._live_sessions) > 100_000:
            self._live_sessions.clear()
        self._live_sessions[key] = min(now + SESSION_CHECK, session["expires_at"])
        return Principal(username=account.username, session_id=claims["sid"])

    def jwks(self) -> dict:
        return self._tokens.jwks()

    def _token_set(self, account: UserAccount, session_id: str, refresh: str) -> TokenSet:
        profile = {"email": account.email, "given_name": account.given_name, "family_name": account.family_name}
        return TokenSet(access_token=self._tokens.access_token(account.username, session_id),
                        refresh_token=refresh, id_token=self._tokens.id_token(account.username, profile),
                        expires_in=self._tokens.access_ttl)

    def _issue_code(self, account: UserAccount, purpose: str) -> str:
        code = f"{secrets.randbelow(10**6):06d}"
        account.issue_code(purpose=purpose, code_hash=self._code_hash(account.username, purpose, code),
                           expires_at=self._clock() + self._code_ttl)
        return code

    def _check_code(self, account: UserAccount, purpose: str, code) -> None:
        stored = account.usable_code(purpose, self._clock())
        if stored is None:
            raise InvalidCode()
        if not isinstance(code, str) or not hmac.compare_digest(
                stored["hash"], self._code_hash(account.username, purpose, code.strip())):
            account.reject_code(purpose=purpose)
            self._accounts.store(account)
            raise InvalidCode()

    def _account_or_invalid_code(self, username) -> UserAccount:
        if not isinstance(username, str) or not username:
            raise ValidationFailed("username is required", field="username")
        try:
            return self._accounts.account(username)
        except UnknownUser:
            raise InvalidCode() from None

    def _code_hash(self, username: str, purpose: str, code: str) -> str:
        # Keyed, because six digits are trivially brute-forced from a plain hash in the event store.
        message = f"{username.lower()}\0{purpose}\0{code}".encode()
        return hmac.new(self._code_key, message, hashlib.sha256).hexdigest()

    def _send_code(self, account: UserAccount, code: str, purpose: str) -> None:
        minutes = self._code_ttl // 60
        if purpose == SIGNUP:
            subject = "Your iotcloud confirmation code"
            body = f"Hello {account.given_name},\n\nyour confirmation code is {code}. It expires in {minutes} minutes."
        else:
            subject = "Your iotcloud password reset code"
            body = f"Hello {account.given_name},\n\nyour password reset code is {code}. It expires in {minutes} minutes."
        self._notifier.send_email(account.email, subject, body)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def check_username(username) -> None:
    if not isinstance(username, str) or not USERNAME_PATTERN.match(username):
        raise ValidationFailed("username must be 3-64 characters: letters, digits and _ . @ + -", field="username")


def check_password(password) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters", field="password")


def check_email(email) -> None:
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email.strip()):
        raise ValidationFailed("email is not a valid address", field="email")
