"""/v1/auth/* and /v1/me: sign-up, confirmation, login, tokens, password reset, profile."""

from __future__ import annotations

import falcon

from commands.context import acting_as
from commands.errors import ValidationFailed
from commands.identity.local import FIELD_LIMITS
from commands.identity.port import IdentityProvider, TokenSet
from gateways.http.consistency import ReadYourWrites
from gateways.http.bodies import json_body, text_field
from queries.users import UserQueries


def token_body(tokens: TokenSet) -> dict:
    return {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
            "id_token": tokens.id_token, "token_type": tokens.token_type, "expires_in": tokens.expires_in}


def field(body: dict, name: str, required: bool = True) -> str | None:
    """A text field cut at the identity provider's limit for it, before any other work."""
    return text_field(body, name, required, FIELD_LIMITS[name])


def anonymous(req, actor: str):
    return acting_as(f"anonymous:{actor}", req.context.correlation_id, req.context.request_id)


class IdentityResource:
    """A public resource that talks to the identity provider."""

    public = True

    def __init__(self, identity: IdentityProvider, rw: ReadYourWrites | None = None):
        self._identity, self._rw = identity, rw


class SignUp(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = field(body, "username")
        with anonymous(req, username):
            position = self._identity.sign_up(username, field(body, "password"), field(body, "email"),
                                              field(body, "given_name"), field(body, "family_name"))
        self._rw.users(resp, position)
        # The same answer when the username or email is taken: the address's owner is emailed instead.
        resp.status = falcon.HTTP_201
        resp.media = {"username": username, "status": "UNCONFIRMED",
                      "next": "POST /v1/auth/confirm with the code sent to your email"}


class ConfirmSignUp(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = field(body, "username")
        with anonymous(req, username):
            position = self._identity.confirm_sign_up(username, field(body, "code"))
        self._rw.users(resp, position)
        resp.media = {"username": username, "status": "CONFIRMED"}


class ResendCode(IdentityResource):
    def on_post(self, req, resp):
        username = field(json_body(req), "username")
        with anonymous(req, username):
            self._identity.resend_confirmation_code(username)
        resp.status = falcon.HTTP_202
        resp.media = {"username": username, "sent": True}


class Login(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = field(body, "username")
        with anonymous(req, username):
            tokens = self._identity.login(username, field(body, "password"), client=req.remote_addr or "")
        resp.media = token_body(tokens)


class Refresh(IdentityResource):
    def on_post(self, req, resp):
        token = field(json_body(req), "refresh_token")
        with anonymous(req, "refresh"):
            resp.media = token_body(self._identity.refresh(token))


class Logout(IdentityResource):
    """Ends this session."""

    public = False

    def on_post(self, req, resp):
        principal = req.context.principal
        with acting_as(f"user:{principal.username}", req.context.correlation_id, req.context.request_id):
            self._end(principal)
        resp.status = falcon.HTTP_204

    def _end(self, principal) -> None:
        self._identity.logout(principal)


class LogoutEverywhere(Logout):
    """Ends every session of the caller; answers once none of their tokens is accepted any more."""

    def _end(self, principal) -> None:
        self._identity.logout_everywhere(principal)


class ForgotPassword(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        email, username = field(body, "email", False), field(body, "username", False)
        if email is None and username is None:
            raise ValidationFailed("username or email is required")
        with anonymous(req, username or "forgot-password"):
            self._identity.forgot_password(username=None if email else username, email=email)
        # Sent or not (unknown account), the answer is the same.
        resp.status = falcon.HTTP_202
        resp.media = {"sent": True, "next": "POST /v1/auth/reset-password with the code sent to your email,"
                                            " naming the account as you did here (username or email)"}


class ResetPassword(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        email, username = field(body, "email", False), field(body, "username", False)
        if email is None and username is None:
            raise ValidationFailed("username or email is required")
        with anonymous(req, username or "reset-password"):
            self._identity.confirm_forgot_password(None if email else username, field(body, "code"),
                                                   field(body, "password"), email=email)
        resp.media = {"password_reset": True, **({"email": email} if email else {"username": username})}


class Me:
    def __init__(self, users: UserQueries):
        self._users = users

    def on_get(self, req, resp):
        resp.media = self._users.profile(req.context.principal.username)


class Jwks(IdentityResource):
    def on_get(self, req, resp):
        resp.media = self._identity.jwks()
