"""The identity-provider port over an Amazon Cognito user pool (boto3 `cognito-idp`).

The callers see what the local provider gives them: the same validation answers, the same answers for
unknown and known accounts (sign-up, resend, forgot-password), the same domain errors. Tokens are the
pool's own RS256 JWTs, verified here against its JWKS (pool_tokens.py). Devices are owned by the Cognito
`sub` (Principal.user_id): a username can be deleted and signed up again by someone else, a `sub` never
comes back.

Logout is Cognito's global sign-out (every session of the user), as libpyiotcloud did. A JWT stays
valid by signature until it expires, so a signed-out token is refused (a) at once in this process and
(b) within `session_check` seconds elsewhere, when the token's liveness is next asked of Cognito (GetUser).
"""

from __future__ import annotations

import logging
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from commands.errors import (EmailTaken, IdentityProviderUnavailable, InvalidCode, InvalidCredentials, InvalidToken,
                             NotConfirmed, TooManyAttempts, UnknownUser, ValidationFailed)
from commands.identity.background import run_now, settle_deferred
from commands.identity.local import check_account_named, check_field, check_login, check_password, check_sign_up
from commands.identity.port import IdentityProvider, Notifier, Principal, TokenSet
from commands.identity.throttle import CodeIssueThrottle, CodeLimits, LoginBackoff
from gateways.cognito.pool_tokens import PoolKeys, PoolTokenVerifier, pool_issuer

log = logging.getLogger("iotcloud.identity.cognito")

SESSION_CHECK = 30.0   # seconds a token is trusted alive (signature aside) before Cognito is asked again
THROTTLED = frozenset({"TooManyRequestsException", "LimitExceededException", "TooManyFailedAttemptsException"})
PROFILE_ATTRIBUTES = ("email", "given_name", "family_name")


def cognito_client(region: str):
    """boto3 reads the standard variables itself (AWS_ENDPOINT_URL for moto, credentials); short deadlines,
    so an unreachable pool answers 503 in seconds rather than holding API threads."""
    return boto3.client("cognito-idp", region_name=region,
                        config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2,
                                                                                   "mode": "standard"}))


def jwks_url(client, pool_id: str) -> str:
    """Where the pool publishes its keys: AWS's public URL, or the same path on a configured endpoint (moto)."""
    return f"{client.meta.endpoint_url.rstrip('/')}/{pool_id}/.well-known/jwks.json"


class CognitoIdentityProvider(IdentityProvider):
    def __init__(self, client, pool_id: str, client_id: str, region: str, notifier: Notifier, *,
                 max_failures: int, max_delay: int, keys: PoolKeys | None = None, defer=run_now,
                 session_check: float = SESSION_CHECK, clock=time.time, wait=time.sleep):
        self._cognito, self._pool_id, self._client_id = client, pool_id, client_id
        self._notifier = notifier
        self._defer = defer
        self._clock = clock
        self._session_check = session_check
        self._wait = wait
        self._keys = keys or PoolKeys(jwks_url(client, pool_id))
        self._tokens = PoolTokenVerifier(self._keys, pool_issuer(region, pool_id), client_id)
        self._logins = LoginBackoff(max_failures, max_delay, clock)
        # The local provider's limits on issuing codes: each one is an email Cognito sends on our behalf.
        self._issue = CodeIssueThrottle(CodeLimits(), clock)
        self._lock = threading.Lock()
        self._alive: dict[str, float] = {}           # token id -> trusted alive until
        self._signed_out: dict[str, int] = {}        # sub -> tokens issued before this second are refused

    # ------------------------------------------------------------------ anonymous calls

    def sign_up(self, username, password, email, given_name, family_name) -> int:
        check_sign_up(username, password, email, given_name, family_name)
        self._issue.take("signup", email)
        attributes = [{"Name": "email", "Value": email.strip()}, {"Name": "given_name", "Value": given_name.strip()},
                      {"Name": "family_name", "Value": family_name.strip()}]
        try:
            self._call("sign_up", ClientId=self._client_id, Username=username, Password=password,
                       UserAttributes=attributes)
        except _Refused as refused:
            if refused.code != "UsernameExistsException":
                raise refused.error() from None
            # The answer a new sign-up gets; the owner of the existing account hears about it instead.
            self._defer(lambda: self._tell_about_taken_sign_up(username))
        return 0  # no event of ours: there is no read model to wait for

    def confirm_sign_up(self, username, code) -> int:
        check_field("username", username)
        check_field("code", code)
        try:
            self._call("confirm_sign_up", ClientId=self._client_id, Username=username, ConfirmationCode=code.strip())
        except _Refused as refused:
            # Unknown user, confirmed already, wrong or expired code: one answer, as the local provider gives.
            if refused.code in THROTTLED:
                raise refused.error() from None
            raise InvalidCode() from None
        return 0

    def resend_confirmation_code(self, username) -> None:
        check_field("username", username)
        self._issue.take("signup", username)
        self._defer(lambda: self._quietly("resend_confirmation_code", ClientId=self._client_id, Username=username))

    def login(self, username, password, client: str = "") -> TokenSet:
        check_login(username, password)
        key = (username.lower(), client)
        self._logins.check(key)
        try:
            answer = self._call("initiate_auth", ClientId=self._client_id, AuthFlow="USER_PASSWORD_AUTH",
                                AuthParameters={"USERNAME": username, "PASSWORD": password})
        except _Refused as refused:
            if refused.code == "UserNotConfirmedException":
                self._logins.succeeded(key)
                raise NotConfirmed() from None
            if refused.code in ("NotAuthorizedException", "UserNotFoundException"):
                self._logins.failed(key)
                raise InvalidCredentials() from None
            raise refused.error() from None
        self._logins.succeeded(key)
        if "AuthenticationResult" not in answer:  # a challenge (MFA, new password) this API does not speak
            raise InvalidCredentials("the account needs a sign-in step this API does not support")
        return self._token_set(answer["AuthenticationResult"])

    def refresh(self, refresh_token) -> TokenSet:
        if not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > 4096:
            raise InvalidToken("refresh_token is required")
        try:
            answer = self._call("initiate_auth", ClientId=self._client_id, AuthFlow="REFRESH_TOKEN_AUTH",
                                AuthParameters={"REFRESH_TOKEN": refresh_token})
        except _Refused as refused:
            if refused.code in THROTTLED:
                raise refused.error() from None
            raise InvalidToken("the session has ended") from None
        # Cognito keeps the refresh token unless the pool rotates them; the caller keeps using this one.
        return self._token_set(answer["AuthenticationResult"], refresh_token)

    def forgot_password(self, username=None, email=None) -> None:
        check_account_named(username, email)
        self._issue.take("reset", email or username)
        self._defer(lambda: self._send_reset_code(username, email))

    def confirm_forgot_password(self, username, code, new_password, email=None) -> None:
        check_password(new_password)
        check_field("code", code)
        name = self._username_for(username, email)
        if name is None:
            raise InvalidCode()
        try:
            self._call("confirm_forgot_password", ClientId=self._client_id, Username=name,
                       ConfirmationCode=code.strip(), Password=new_password)
        except _Refused as refused:
            if refused.code in ("InvalidPasswordException", *THROTTLED):
                raise refused.error() from None
            raise InvalidCode() from None

    # ------------------------------------------------------------------ signed-in calls

    def logout(self, principal: Principal) -> None:
        """Global sign-out: Cognito revokes every refresh token of the user and its access tokens."""
        with self._lock:
            if len(self._signed_out) > 100_000:
                self._signed_out.clear()  # only a shortcut: GetUser refuses signed-out tokens anyway
            # Whole seconds, as `iat` is: tokens of that very second are asked of Cognito every time.
            self._signed_out[principal.user_id] = int(self._clock())
        try:
            self._call("admin_user_global_sign_out", UserPoolId=self._pool_id, Username=principal.username)
        except _Refused as refused:
            raise refused.error() from None

    def logout_everywhere(self, principal: Principal) -> None:
        """Cognito's sign-out is global already. This process refuses the user's tokens at once; other API
        processes trust a token they checked for `session_check` seconds, so the answer waits that out."""
        self.logout(principal)
        self._wait(self._session_check)

    def authenticate(self, access_token) -> Principal:
        claims = self._tokens.verify_access(access_token)
        sub, token_id = str(claims["sub"]), str(claims.get("jti") or access_token[-32:])
        now = self._clock()
        with self._lock:
            signed_out = self._signed_out.get(sub)
            if signed_out is not None and claims["iat"] < signed_out:
                raise InvalidToken("the session has ended")
            alive = self._alive.get(token_id, 0) > now and (signed_out is None or claims["iat"] > signed_out)
        if not alive:
            try:
                self._call("get_user", AccessToken=access_token)
            except _Refused as refused:
                if refused.code in THROTTLED:
                    raise refused.error() from None
                raise InvalidToken("the session has ended") from None
            with self._lock:
                if len(self._alive) > 100_000:
                    self._alive.clear()
                self._alive[token_id] = min(now + self._session_check, float(claims["exp"]))
        return Principal(username=claims["username"], session_id=str(claims.get("origin_jti") or token_id),
                         user_id=sub)

    def jwks(self) -> dict:
        return self._keys.document()

    def settle(self, timeout: float = 10.0) -> bool:
        return settle_deferred(self._defer, timeout)

    def profile(self, username: str) -> dict:
        """What /v1/me and the v2 /user show: the pool's attributes of the signed-in user."""
        try:
            user = self._call("admin_get_user", UserPoolId=self._pool_id, Username=username)
        except _Refused as refused:
            if refused.code == "UserNotFoundException":
                raise UnknownUser(f"no profile for '{username}'") from None
            raise refused.error() from None
        attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
        return {"username": user["Username"], **{name: attributes.get(name, "") for name in PROFILE_ATTRIBUTES},
                "status": "CONFIRMED" if user.get("UserStatus") == "CONFIRMED" else "UNCONFIRMED",
                "signed_up_at": user.get("UserCreateDate")}

    # ------------------------------------------------------------------ helpers

    def _token_set(self, result: dict, refresh_token: str | None = None) -> TokenSet:
        return TokenSet(access_token=result["AccessToken"], refresh_token=result.get("RefreshToken") or refresh_token,
                        id_token=result["IdToken"], expires_in=int(result.get("ExpiresIn", 3600)))

    def _send_reset_code(self, username, email) -> None:
        name = self._username_for(username, email)
        if name is not None:
            self._quietly("forgot_password", ClientId=self._client_id, Username=name)

    def _username_for(self, username, email) -> str | None:
        """v2 clients name the account by its email: the pool's user with that address, else `username`."""
        if email is None:
            return username
        try:
            found = self._call("list_users", UserPoolId=self._pool_id, Limit=2,
                               Filter=f'email = "{_filter_value(email)}"').get("Users", [])
        except _Refused:
            found = []
        return found[0]["Username"] if len(found) == 1 else username

    def _tell_about_taken_sign_up(self, username: str) -> None:
        try:
            user = self._call("admin_get_user", UserPoolId=self._pool_id, Username=username)
        except (_Refused, IdentityProviderUnavailable):
            return
        attributes = {a["Name"]: a["Value"] for a in user.get("UserAttributes", [])}
        if attributes.get("email"):
            self._notifier.send_email(attributes["email"], "Someone tried to sign up with your username",
                                      f"Hello {attributes.get('given_name', '')},\n\nsomeone tried to create an"
                                      f" iotcloud account named '{username}'. It is yours already: log in, or reset"
                                      " your password if you forgot it. If it was not you, ignore this message.")

    def _quietly(self, operation: str, **params) -> None:
        """Work whose outcome the caller is not told (it would reveal whether the account exists)."""
        try:
            self._call(operation, **params)
        except (_Refused, IdentityProviderUnavailable) as error:
            log.warning("cognito %s failed: %s", operation, getattr(error, "code", type(error).__name__))

    def _call(self, operation: str, **params) -> dict:
        try:
            return getattr(self._cognito, operation)(**params)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
            if status >= 500 or not code or code == "InternalErrorException":
                log.warning("cognito %s failed with HTTP %s", operation, status)
                raise IdentityProviderUnavailable() from None
            raise _Refused(code) from None
        except BotoCoreError as error:
            log.warning("cognito %s unreachable: %s", operation, type(error).__name__)
            raise IdentityProviderUnavailable() from None


class _Refused(Exception):
    """Cognito refused the call with `code` (its error code, never its message: that may echo input)."""

    ERRORS = {"InvalidPasswordException": lambda: ValidationFailed(
                  "password does not meet the user pool's password policy", field="password"),
              "InvalidParameterException": lambda: ValidationFailed("the identity provider refused these values"),
              "CodeMismatchException": InvalidCode, "ExpiredCodeException": InvalidCode,
              "AliasExistsException": EmailTaken, "UserNotConfirmedException": NotConfirmed,
              "NotAuthorizedException": InvalidCredentials, "UserNotFoundException": InvalidCredentials,
              **{code: lambda: TooManyAttempts("the identity provider is throttling; retry later") for code in THROTTLED}}

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code

    def error(self):
        return self.ERRORS.get(self.code, IdentityProviderUnavailable)()


def _filter_value(value: str) -> str:
    """A ListUsers filter string value: quotes and backslashes escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
