"""The embedded identity provider: Argon2id passwords, EdDSA JWTs, rotating refresh tokens, codes by notifier.

Anonymous calls answer the same whether or not the username or email exists (sign-up, resend,
forgot-password, login); what differs goes by email to the address's owner instead.
"""

from __future__ import annotations

import hmac
import hashlib
import secrets
import string
import time
import uuid

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from commands.accounts import Accounts
from commands.domain.accounts import RESET, SIGNUP, EmailClaim, UserAccount
from commands.errors import (ConcurrentChange, EmailTaken, InvalidCode, InvalidCredentials, InvalidToken,
                             NotConfirmed, TooManyAttempts, UnknownUser, UsernameTaken, ValidationFailed)
from commands.identity.background import run_now, settle_deferred
from commands.identity.port import IdentityProvider, Notifier, Principal, TokenSet
from commands.identity.throttle import CodeIssueThrottle, CodeLimits, LoginBackoff, RateLimit
from commands.identity.tokens import TokenIssuer, new_refresh_token, parse_refresh_token

SESSION_CHECK = 5.0  # seconds an access token's session is trusted without re-reading the account
MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_USERNAME = 64
MAX_EMAIL = 254     # RFC 5321 path limit
MAX_EMAIL_LOCAL = 64
MAX_NAME = 128
MAX_CODE = 16
# Longest accepted value per field; both REST flavours cut at these before anything else runs.
FIELD_LIMITS = {"username": MAX_USERNAME, "password": MAX_PASSWORD, "email": MAX_EMAIL, "given_name": MAX_NAME,
                "family_name": MAX_NAME, "code": MAX_CODE, "refresh_token": 1024}
USERNAME_FIRST = frozenset(string.ascii_letters + string.digits)
USERNAME_CHARS = USERNAME_FIRST | frozenset("_.@+-")
STORE_RETRIES = 20  # appends retried after a concurrent change (another request on the same account)


class LocalIdentityProvider(IdentityProvider):
    """Keeps users as event-sourced aggregates in `Accounts`; sends codes through a `Notifier`."""

    def __init__(self, accounts: Accounts, tokens: TokenIssuer, notifier: Notifier, code_key: bytes, *,
                 refresh_ttl: int, code_ttl: int, max_failures: int, max_delay: int,
                 hasher: PasswordHasher | None = None, clock=time.time, code_limits: CodeLimits = CodeLimits(),
                 defer=run_now, wait=time.sleep):
        self._accounts = accounts
        self._tokens = tokens
        self._notifier = notifier
        self._code_key = code_key
        self._refresh_ttl = refresh_ttl
        self._code_ttl = code_ttl
        self._hasher = hasher or PasswordHasher()
        self._clock = clock
        self._wait = wait
        # Runs what only happens for existing accounts (store a code, email it) after the answer.
        self._defer = defer
        self._logins = LoginBackoff(max_failures, max_delay, clock)
        self._issue = CodeIssueThrottle(code_limits, clock)
        self._issue_per_account = RateLimit(code_limits.issue_per_key, clock)
        self._guess_per_key = RateLimit(code_limits.guess_per_key, clock)
        self._guess_overall = RateLimit(code_limits.guess_overall, clock)
        # Sessions seen alive recently: spares a store read (and eventsourcing's per-aggregate
        # fast-forward lock, which serialises one user's requests) on every authenticated request.
        # Logout and password reset in this process evict at once; other processes within SESSION_CHECK.
        self._live_sessions: dict[tuple[str, str], float] = {}
        # Verified against when the user is unknown, so timing does not reveal which usernames exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    def sign_up(self, username, password, email, given_name, family_name) -> int:
        check_sign_up(username, password, email, given_name, family_name)
        email = email.strip()
        self._throttle_issue("signup", email)
        # Hashed before anything is looked up, so a taken name or address costs the same time.
        account = UserAccount(username=username, email=email, given_name=given_name.strip(),
                              family_name=family_name.strip(), password_hash=self._hasher.hash(password))
        code = self._issue_code(account, SIGNUP)
        try:
            position = self._accounts.create(account, EmailClaim(email=email, username=username))
        except (UsernameTaken, EmailTaken):
            # Same answer as a new sign-up; only the owner of the address learns what happened.
            self._tell_about_taken_sign_up(username, email)
            return self._accounts.recorder.max_notification_id() or 0
        self._send_code(account, code, SIGNUP)
        return position

    def confirm_sign_up(self, username, code) -> int:
        return self._redeem(username, None, SIGNUP, code, lambda account: account.confirm())[1]

    def resend_confirmation_code(self, username) -> None:
        check_field("username", username)
        self._throttle_issue("signup", username)
        self._defer(lambda: self._send_new_code(username, None, SIGNUP))

    def login(self, username, password, client: str = "") -> TokenSet:
        check_login(username, password)
        key = (username.lower(), client)
        self._logins.check(key)  # before the password is looked at: a throttled guess is no guess
        try:
            account = self._accounts.account(username)
        except UnknownUser:
            account = None
        if not self._verify(account.password_hash if account else self._dummy_hash, password) or account is None:
            self._logins.failed(key)
            raise InvalidCredentials()
        self._logins.succeeded(key)
        if not account.confirmed:
            raise NotConfirmed()
        session_id = uuid.uuid4().hex
        refresh, refresh_hash = new_refresh_token(account.username, session_id)
        expires_at = self._clock() + self._refresh_ttl
        self._update(account.username, lambda a: a.start_session(session_id=session_id, refresh_hash=refresh_hash,
                                                                  expires_at=expires_at))
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
            if any(hmac.compare_digest(used, presented_hash) for used in session.get("used_hashes", ())):
                # A rotated-out refresh token came back: assume it was stolen and end the session.
                self._update(account.username, lambda a: a.end_session(session_id=session_id,
                                                                       reason="refresh-token-reuse"))
                self._live_sessions.pop((account.username.lower(), session_id), None)
                raise InvalidToken("refresh token already used; the session has been revoked")
            # Never issued by us (e.g. forged from a username and a session id): refuse, end nothing.
            raise InvalidToken("unknown refresh token")
        refresh, refresh_hash = new_refresh_token(account.username, session_id)
        expires_at = self._clock() + self._refresh_ttl

        def rotate(latest: UserAccount) -> None:
            current = latest.sessions.get(session_id)
            if current is None or not hmac.compare_digest(current["refresh_hash"], presented_hash):
                raise InvalidToken("the refresh token was used concurrently")
            latest.rotate_session(session_id=session_id, refresh_hash=refresh_hash, expires_at=expires_at)
        self._update(account.username, rotate)
        return self._token_set(account, session_id, refresh)

    def logout(self, principal: Principal) -> None:
        self._live_sessions.pop((principal.username.lower(), principal.session_id), None)

        def end(account: UserAccount) -> None:
            if principal.session_id in account.sessions:
                account.end_session(session_id=principal.session_id, reason="logout")
        self._update(principal.username, end)

    def logout_everywhere(self, principal: Principal) -> None:
        def end_all(account: UserAccount) -> None:
            for session_id in list(account.sessions):
                account.end_session(session_id=session_id, reason="logout-everywhere")
        self._update(principal.username, end_all)
        self._forget_live_sessions(principal.username)
        # Other API processes trust a session they checked for SESSION_CHECK seconds: answer once that
        # trust has run out everywhere, so the caller is told "signed out" only when it holds.
        self._wait(SESSION_CHECK)

    def forgot_password(self, username=None, email=None) -> None:
        check_account_named(username, email)
        self._throttle_issue("reset", email or username)
        self._defer(lambda: self._send_new_code(username, email, RESET))

    def settle(self, timeout: float = 10.0) -> bool:
        """Waits until deferred codes and notices have been sent (tests, shutdown)."""
        return settle_deferred(self._defer, timeout)

    def confirm_forgot_password(self, username, code, new_password, email=None) -> None:
        check_password(new_password)
        password_hash = self._hasher.hash(new_password)
        name, _ = self._redeem(username, email, RESET, code, lambda a: a.reset_password(password_hash=password_hash))
        self._forget_live_sessions(name)

    def _forget_live_sessions(self, username: str) -> None:
        for key in [k for k in self._live_sessions if k[0] == username.lower()]:
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
        self._record_code(account, purpose, code)
        return code

    def _record_code(self, account: UserAccount, purpose: str, code: str) -> None:
        account.issue_code(purpose=purpose, code_hash=self._code_hash(account.username, purpose, code),
                           expires_at=self._clock() + self._code_ttl)

    def _send_new_code(self, username, email, purpose: str) -> None:
        """Issues and sends a code if the account exists (and, for sign-up codes, is unconfirmed)."""
        name = self._accounts.username_for_email(email) if email is not None else username
        if name is None:
            return
        try:
            account = self._accounts.account(name)
        except UnknownUser:
            return
        if purpose == SIGNUP and account.confirmed:
            return
        try:  # also per account (it may be named by username and by email); silent, the answer went out
            self._issue_per_account.take((purpose, account.username.lower()))
        except TooManyAttempts:
            return
        code = f"{secrets.randbelow(10**6):06d}"
        self._update(account.username, lambda a: self._record_code(a, purpose, code))
        self._send_code(account, code, purpose)

    def _throttle_issue(self, purpose: str, identifier: str) -> None:
        self._issue.take(purpose, identifier)

    def _redeem(self, username, email, purpose: str, code, apply) -> tuple[str, int]:
        """Checks a code and applies its effect. Each guess is first recorded as an attempt (retried
        on concurrent changes), so no guess is free and at most MAX_CODE_ATTEMPTS are ever compared."""
        identifier = email if email is not None else username
        check_field("email" if email is not None else "username", identifier)
        if not isinstance(code, str) or not code.strip() or len(code) > MAX_CODE:
            raise InvalidCode()
        self._guess_overall.take(purpose)
        name = self._username_for(username, email)
        # Keyed by the account when the email names one, so username and email share one budget;
        # else by what was typed, which a missing account answers the same way.
        self._guess_per_key.take((purpose, (name or identifier).strip().lower()))
        if name is None:
            raise InvalidCode()
        attempted: dict = {}

        def attempt(account: UserAccount) -> None:
            if account.confirmed and purpose == SIGNUP:
                raise InvalidCode()
            stored = account.usable_code(purpose, self._clock())
            if stored is None:
                raise InvalidCode()
            attempted.update(stored)
            account.attempt_code(purpose=purpose)
        try:
            self._update(name, attempt)
        except UnknownUser:
            raise InvalidCode() from None
        if not hmac.compare_digest(attempted["hash"], self._code_hash(name, purpose, code.strip())):
            raise InvalidCode()

        def redeem(account: UserAccount) -> None:
            current = account.codes.get(purpose)
            if current is None or current["hash"] != attempted["hash"]:
                raise InvalidCode()  # redeemed or replaced meanwhile
            apply(account)
        account, position = self._update(name, redeem)
        return account.username, position

    def _username_for(self, username, email) -> str | None:
        if email is not None:
            # v2 clients send back as `username` the email forgot_password echoed; a real username still works.
            return self._accounts.username_for_email(email) or username
        return username

    def _update(self, username: str, change) -> tuple[UserAccount, int]:
        """Loads the latest account, applies `change` and appends; a concurrent append reloads and retries."""
        for _ in range(STORE_RETRIES):
            account = self._accounts.account(username)
            change(account)
            try:
                return account, self._accounts.store(account)
            except ConcurrentChange:
                continue
        raise ConcurrentChange()

    def _tell_about_taken_sign_up(self, username: str, email: str) -> None:
        owner = self._accounts.username_for_email(email)
        if owner is not None:
            account = self._accounts.account(owner)
            self._notifier.send_email(account.email, "Someone tried to sign up with your address",
                                      f"Hello {account.given_name},\n\nsomeone tried to create an iotcloud account"
                                      " with this address. You already have one: log in, or reset your password"
                                      " if you forgot it. If it was not you, ignore this message.")
        else:
            self._notifier.send_email(email, "Your iotcloud sign-up",
                                      f"Hello,\n\nthe username '{username}' is already taken, so no account was"
                                      " created. Sign up again with another username.")

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


def check_field(field: str, value) -> None:
    """A present string no longer than the field's limit (checked before any other work on it)."""
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{field} is required", field=field)
    if len(value) > FIELD_LIMITS[field]:
        raise ValidationFailed(f"{field} is longer than {FIELD_LIMITS[field]} characters", field=field)


def check_sign_up(username, password, email, given_name, family_name) -> None:
    """Every sign-up field, as both providers check them before anything else."""
    check_username(username)
    check_password(password)
    check_email(email)
    for field, value in (("given_name", given_name), ("family_name", family_name)):
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
            raise ValidationFailed(f"{field} must be 1-{MAX_NAME} characters", field=field)


def check_login(username, password) -> None:
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise ValidationFailed("username and password are required")
    check_field("username", username)
    check_field("password", password)


def check_account_named(username, email) -> None:
    """A password reset names its account by email, else by username."""
    if email is not None:
        check_field("email", email)
    elif username is not None:
        check_field("username", username)
    else:
        raise ValidationFailed("username or email is required")


def check_username(username) -> None:
    if (not isinstance(username, str) or not 3 <= len(username) <= MAX_USERNAME
            or username[0] not in USERNAME_FIRST or not USERNAME_CHARS.issuperset(username)):
        raise ValidationFailed(f"username must be 3-{MAX_USERNAME} characters: letters, digits and _ . @ + -",
                               field="username")


def check_password(password) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters", field="password")


def check_email(email) -> None:
    """local@domain.tld in one linear pass: no whitespace, one '@', non-empty labels, a 2+ character TLD."""
    if not isinstance(email, str) or len(email) > MAX_EMAIL or not _is_email(email.strip()):
        raise ValidationFailed("email is not a valid address", field="email")


def _is_email(email: str) -> bool:
    local, at, domain = email.partition("@")
    if not at or not 1 <= len(local) <= MAX_EMAIL_LOCAL or "@" in domain:
        return False
    if any(char.isspace() for char in email):
        return False
    labels = domain.split(".")
    return len(labels) >= 2 and all(labels) and len(labels[-1]) >= 2
