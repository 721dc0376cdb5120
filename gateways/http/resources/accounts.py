"""/v1/auth/* and /v1/me: sign-up, confirmation, login, tokens, password reset, profile."""

from __future__ import annotations

import falcon

from commands.context import acting_as
from commands.identity.port import IdentityProvider, TokenSet
from gateways.http.consistency import ReadYourWrites
from gateways.http.bodies import json_body, text_field
from queries.users import UserQueries


def token_body(tokens: TokenSet) -> dict:
    return {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token,
            "id_token": tokens.id_token, "token_type": tokens.token_type, "expires_in": tokens.expires_in}


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
        username = text_field(body, "username", max_length=64)
        with anonymous(req, username):
            position = self._identity.sign_up(username, text_field(body, "password", max_length=256),
                                   text_field(body, "email", max_length=254),
                                   text_field(body, "given_name", max_length=128),
                                   text_field(body, "family_name", max_length=128))
        self._rw.users(resp, position)
        resp.status = falcon.HTTP_201
        resp.media = {"username": username, "status": "UNCONFIRMED",
                      "next": "POST /v1/auth/confirm with the code sent to your email"}


class ConfirmSignUp(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = text_field(body, "username", max_length=64)
        with anonymous(req, username):
            position = self._identity.confirm_sign_up(username, text_field(body, "code", max_length=16))
        self._rw.users(resp, position)
        resp.media = {"username": username, "status": "CONFIRMED"}


class ResendCode(IdentityResource):
    def on_post(self, req, resp):
        username = text_field(json_body(req), "username", max_length=64)
        with anonymous(req, username):
            self._identity.resend_confirmation_code(username)
        resp.status = falcon.HTTP_202
        resp.media = {"username": username, "sent": True}


class Login(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = text_field(body, "username", max_length=64)
        with anonymous(req, username):
            tokens = self._identity.login(username, text_field(body, "password", max_length=256))
        resp.media = token_body(tokens)


class Refresh(IdentityResource):
    def on_post(self, req, resp):
        token = text_field(json_body(req), "refresh_token", max_length=1024)
        with anonymous(req, "refresh"):
            resp.media = token_body(self._identity.refresh(token))


class Logout(IdentityResource):
    public = False

    def on_post(self, req, resp):
        principal = req.context.principal
        with acting_as(f"user:{principal.username}", req.context.correlation_id, req.context.request_id):
            self._identity.logout(principal)
        resp.status = falcon.HTTP_204


class ForgotPassword(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        email, username = text_field(body, "email", False, 254), text_field(body, "username", False, 64)
        with anonymous(req, username or "forgot-password"):
            username = self._identity.forgot_password(username=username, email=email)
        resp.status = falcon.HTTP_202
        resp.media = {"username": username, "sent": True,
                      "next": "POST /v1/auth/reset-password with the code sent to your email"}


class ResetPassword(IdentityResource):
    def on_post(self, req, resp):
        body = json_body(req)
        username = text_field(body, "username", max_length=64)
        with anonymous(req, username):
            self._identity.confirm_forgot_password(username, text_field(body, "code", max_length=16),
                                                   text_field(body, "password", max_length=256))
        resp.media = {"username": username, "password_reset": True}


class Me:
    def __init__(self, users: UserQueries):
        self._users = users

    def on_get(self, req, resp):
        resp.media = self._users.profile(req.context.principal.username)


class Jwks(IdentityResource):
    def on_get(self, req, resp):
        resp.media = self._identity.jwks()
