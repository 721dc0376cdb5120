"""libpyiotcloud v2 routes, byte-compatible in shape, as a thin adapter over the same application.

Bodies carry `username` + `token` ({access, refresh, id}); answers use the
`{"status": "OK"|"NG", "message": ...}` envelope written with json.dumps defaults. Seed bugs
are dropped, shapes kept: errors are never 200 + NG, no private key is stored or listed
(`pkey` is "" after registration), and an expired access token is refreshed silently
(`new_token` in the answer) as the seed did.
"""

from __future__ import annotations

import json
import logging

import falcon

from commands.context import acting_as
from commands.errors import (DeviceNameTaken, DeviceNotFound, DomainError, EmailTaken, InvalidCode, InvalidCredentials,
                             InvalidToken, NotConfirmed, TokenExpired, TooManyAttempts, UnknownEmail, UnknownUser,
                             UsernameTaken, ValidationFailed)
from commands.identity.local import FIELD_LIMITS
from commands.identity.port import IdentityProvider, Principal
from gateways.http.bodies import bounded_loads, read_bounded
from gateways.http.consistency import ReadYourWrites
from queries.users import UserQueries

log = logging.getLogger("iotcloud.http.v2")

# (HTTP status, message) for each domain error, as libpyiotcloud answered them.
V2_ERRORS: list[tuple[type[DomainError], int, str]] = [
    (ValidationFailed, 400, "Empty parameter found"),
    (UsernameTaken, 409, "Username already exists"),
    (EmailTaken, 409, "Email already used"),
    (InvalidCode, 400, "Invalid code"),
    (UnknownEmail, 400, "Email does not exist"),
    (UnknownUser, 400, "Invalid user"),
    (InvalidCredentials, 401, "Unauthorized access"),
    (NotConfirmed, 401, "Unauthorized access"),
    (InvalidToken, 401, "Unauthorized access"),
    (TooManyAttempts, 429, "Attempt limit exceeded. Please try again later."),
    (DeviceNameTaken, 409, "Device is already registered"),
    (DeviceNotFound, 400, "Device is not registered"),
]


class V2Error(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def envelope(resp: falcon.Response, status: int, message: str, **extra) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps({"status": "OK" if status < 400 else "NG", "message": message, **extra})


def v2_error_for(error: DomainError) -> tuple[int, str]:
    for kind, status, message in V2_ERRORS:
        if isinstance(error, kind):
            if kind is ValidationFailed and "required" not in error.detail:
                return status, error.detail
            return status, message
    return error.status, error.title


class V2Resource:
    """Parses the body, authenticates from it when asked, and maps errors to the NG envelope."""

    public = True  # v2 carries its credentials in the body, not in an Authorization header

    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites):
        self._identity, self._rw = identity, rw

    def respond(self, req, resp, action, authenticated: bool = True) -> None:
        req.context.v2_envelope = True  # errors that escape below are written as NG too (problems.py)
        try:
            body = self._body(req)
            if authenticated:
                principal, new_token = self._authenticate(body)
                req.context.principal = principal
                with acting_as(f"user:{principal.username}", req.context.correlation_id, req.context.request_id):
                    message, extra = action(body, principal)
                if new_token:
                    extra["new_token"] = new_token
            else:
                with acting_as(f"anonymous:{body.get('username') or 'v2'}", req.context.correlation_id,
                               req.context.request_id):
                    message, extra = action(body, None)
            envelope(resp, 200, message, **extra)
        except V2Error as error:
            envelope(resp, error.status, error.message)
        except DomainError as error:
            if isinstance(error, TooManyAttempts):
                resp.set_header("Retry-After", str(error.retry_after))
            envelope(resp, *v2_error_for(error))

    def _body(self, req) -> dict:
        try:
            raw = read_bounded(req.bounded_stream, req.content_length)
        except falcon.HTTPContentTooLarge:
            raise V2Error(413, "Request too large") from None
        try:
            body = bounded_loads(raw) if raw else {}
        except ValueError:
            raise V2Error(400, "Invalid JSON body") from None
        if not isinstance(body, dict):
            raise V2Error(400, "Invalid JSON body")
        return body

    def _authenticate(self, body: dict) -> tuple[Principal, dict | None]:
        username, token = body.get("username"), body.get("token")
        if not isinstance(username, str) or not username or not isinstance(token, dict):
            raise V2Error(400, "Empty parameter found")
        access, refresh = token.get("access"), token.get("refresh")
        if not isinstance(access, str):
            raise V2Error(401, "Unauthorized access")
        new_token = None
        try:
            principal = self._identity.authenticate(access)
        except TokenExpired:
            if not isinstance(refresh, str):
                raise V2Error(401, "Unauthorized access") from None
            tokens = self._identity.refresh(refresh)
            principal = self._identity.authenticate(tokens.access_token)
            new_token = {"access": tokens.access_token, "refresh": tokens.refresh_token, "id": tokens.id_token}
        if principal.username.lower() != username.lower():
            raise V2Error(401, "Unauthorized access")
        return principal, new_token


# Longest value per v2 field, checked before any other work (a 60 KB email once cost 40 s of regex).
V2_FIELD_LIMITS = {"username": FIELD_LIMITS["username"], "password": FIELD_LIMITS["password"],
                   "email": FIELD_LIMITS["email"], "givenname": FIELD_LIMITS["given_name"],
                   "familyname": FIELD_LIMITS["family_name"], "confirmationcode": FIELD_LIMITS["code"]}
DEFAULT_FIELD_LIMIT = 256


def text_fields(body: dict, *names: str) -> list[str]:
    """The named fields: each a non-empty string within its length limit, else 400 Empty parameter found."""
    values = [body.get(name) for name in names]
    if not all(isinstance(v, str) and v for v in values):
        raise V2Error(400, "Empty parameter found")
    for name, value in zip(names, values):
        if len(value) > V2_FIELD_LIMITS.get(name, DEFAULT_FIELD_LIMIT):
            raise V2Error(400, "Parameter too long")
    return values


class UserSignUp(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            username, password, email, given, family = text_fields(body, "username", "password", "email", "givenname",
                                                             "familyname")
            if len(password) < 8:
                raise V2Error(400, "Password length should at least be 8 characters")
            self._rw.users(None, self._identity.sign_up(username, password, email, given, family))
            return "User registered successfully. Check email for confirmation code.", {}
        self.respond(req, resp, action, authenticated=False)


class UserConfirmSignUp(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            username, code = text_fields(body, "username", "confirmationcode")
            self._rw.users(None, self._identity.confirm_sign_up(username, code))
            return "User registration confirmed successfully", {}
        self.respond(req, resp, action, authenticated=False)


class UserResendCode(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            (username,) = text_fields(body, "username")
            self._identity.resend_confirmation_code(username)  # the same answer for unknown or confirmed users
            return "Confirmation code resend successfully", {}
        self.respond(req, resp, action, authenticated=False)


class UserForgotPassword(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            (email,) = text_fields(body, "email")
            self._identity.forgot_password(email=email)
            # The seed answered the account's username, which told anyone whose email it was. The email
            # stands in for it (confirm_forgot_password accepts it), known account or not.
            return "User account recovery successfully. Check email for confirmation code.", {"username": email}
        self.respond(req, resp, action, authenticated=False)


class UserConfirmForgotPassword(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            username, code, password = text_fields(body, "username", "confirmationcode", "password")
            if len(password) < 8:
                raise V2Error(400, "Password length should at least be 8 characters")
            self._identity.confirm_forgot_password(username, code, password,
                                                   email=username if "@" in username else None)
            return "User password reset successfully", {}
        self.respond(req, resp, action, authenticated=False)


class UserLogin(V2Resource):
    def on_post(self, req, resp):
        def action(body, _):
            username, password = text_fields(body, "username", "password")
            tokens = self._identity.login(username, password, client=req.remote_addr or "")
            return "Login successful", {"token": {"access": tokens.access_token, "refresh": tokens.refresh_token,
                                                  "id": tokens.id_token}}
        self.respond(req, resp, action, authenticated=False)


class UserLogout(V2Resource):
    def on_post(self, req, resp):
        def action(body, principal):
            self._identity.logout(principal)
            return "User logout successfully", {}
        self.respond(req, resp, action)


class User(V2Resource):
    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites, users: UserQueries):
        super().__init__(identity, rw)
        self._users = users

    def on_post(self, req, resp):
        def action(body, principal):
            profile = self._users.profile(principal.username)
            info = {"email": profile["email"], "given_name": profile["given_name"],
                    "family_name": profile["family_name"]}
            return "User info queried successfully", {"info": info}
        self.respond(req, resp, action)

    on_get = on_post
