"""Verifies the user pool's JWTs locally against its JWKS (fetched once, then cached).

A Cognito access token is an RS256 JWT whose `iss` is `https://cognito-idp.<region>.amazonaws.com/<pool id>`,
whose `token_use` is `access`, and which names the app client in `client_id` (ID tokens use `aud`). moto's
server signs the same way and serves the key set at `<endpoint>/<pool id>/.well-known/jwks.json`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import jwt

from commands.errors import IdentityProviderUnavailable, InvalidToken, TokenExpired

MAX_TOKEN = 8192          # bytes; Cognito's tokens are 1-2 KB
MAX_JWKS = 64 * 1024
JWKS_TTL = 3600.0         # keys are re-read at most hourly...
UNKNOWN_KID_RETRY = 60.0  # ...or when a token names a key we do not know, at most once a minute
LEEWAY = 5


def pool_issuer(region: str, pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"


class PoolKeys:
    """The pool's public keys by `kid`, read from `jwks_url` with a deadline and kept for JWKS_TTL."""

    def __init__(self, jwks_url: str, clock=time.monotonic, timeout: float = 5.0):
        self._url, self._clock, self._timeout = jwks_url, clock, timeout
        self._lock = threading.Lock()
        self._document: dict = {"keys": []}
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None

    def document(self) -> dict:
        """The JWKS as the pool publishes it (served again at /.well-known/jwks.json)."""
        with self._lock:
            if self._fetched_at is None or self._clock() - self._fetched_at > JWKS_TTL:
                self._fetch()
            return self._document

    def key(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            stale = self._fetched_at is None or self._clock() - self._fetched_at > JWKS_TTL
            unknown = kid not in self._keys and (self._fetched_at is None
                                                 or self._clock() - self._fetched_at > UNKNOWN_KID_RETRY)
            if stale or unknown:
                self._fetch()
            found = self._keys.get(kid)
        if found is None:
            raise InvalidToken("the token was not signed by the user pool")
        return found

    def _fetch(self) -> None:
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout) as answer:
                document = json.loads(answer.read(MAX_JWKS + 1)[:MAX_JWKS])
            keys = {entry["kid"]: jwt.PyJWK(entry) for entry in document["keys"] if entry.get("kty") == "RSA"}
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWKError):
            if self._fetched_at is None:
                raise IdentityProviderUnavailable("the user pool's signing keys cannot be read") from None
            return  # keep the keys we have; retried after UNKNOWN_KID_RETRY
        self._document, self._keys, self._fetched_at = document, keys, self._clock()


class PoolTokenVerifier:
    """Signature (RS256, a pool key), issuer, app client, `token_use` and expiry of a pool token."""

    def __init__(self, keys: PoolKeys, issuer: str, client_id: str):
        self._keys, self._issuer, self._client_id = keys, issuer, client_id

    def verify_access(self, token: str) -> dict:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            raise InvalidToken("malformed access token")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
                raise InvalidToken("unexpected token algorithm")
            claims = jwt.decode(token, self._keys.key(header["kid"]).key, algorithms=["RS256"], issuer=self._issuer,
                                leeway=LEEWAY, options={"require": ["exp", "iat", "iss", "sub", "token_use"],
                                                        "verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.InvalidTokenError:
            raise InvalidToken("invalid access token") from None
        # Access tokens carry the app client in `client_id` (no `aud`): another client's token is refused.
        if claims.get("token_use") != "access" or claims.get("client_id") != self._client_id:
            raise InvalidToken("not an access token of this app client")
        if not isinstance(claims.get("username"), str) or not claims["username"]:
            raise InvalidToken("the access token names no user")
        return claims
