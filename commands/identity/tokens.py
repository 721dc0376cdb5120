"""Signed, short-lived JWTs (EdDSA) and opaque rotating refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from commands.errors import InvalidToken, TokenExpired
from commands.secret_files import read_or_create_secret

ISSUER = "iotcloud"
AUDIENCE = "iotcloud-api"
LEEWAY = 5


class TokenIssuer:
    """Signs access and id tokens with an Ed25519 key kept (mode 0600) in the state directory."""

    def __init__(self, key: Ed25519PrivateKey, access_ttl: int, clock=time.time):
        self._key = key
        self._public = key.public_key()
        self._access_ttl = access_ttl
        self._clock = clock
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self._kid = hashlib.sha256(raw).hexdigest()[:16]
        self._jwk = {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self._kid,
                     "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}

    @classmethod
    def load_or_create(cls, path: Path, access_ttl: int) -> "TokenIssuer":
        key = serialization.load_pem_private_key(read_or_create_secret(path, lambda: Ed25519PrivateKey.generate(
            ).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())), password=None)
        return cls(key, access_ttl)

    @property
    def access_ttl(self) -> int:
        return self._access_ttl

    def access_token(self, username: str, session_id: str) -> str:
        return self._sign({"sub": username, "username": username, "sid": session_id, "token_use": "access"})

    def id_token(self, username: str, profile: dict) -> str:
        return self._sign({"sub": username, "token_use": "id", **profile})

    def verify_access(self, token: str) -> dict:
        try:
            # Times are checked against our own clock below, so tests can move it.
            claims = jwt.decode(token, self._public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "sid"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"access token rejected: {exc}") from None
        now = self._clock()
        if not isinstance(claims["exp"], int) or claims["exp"] + LEEWAY < now:
            raise TokenExpired("the access token has expired; POST /v1/auth/refresh")
        if not isinstance(claims["iat"], int) or claims["iat"] - LEEWAY > now:
            raise InvalidToken("the access token was issued in the future")
        if claims.get("token_use") != "access":
            raise InvalidToken("not an access token")
        return claims

    def jwks(self) -> dict:
        return {"keys": [self._jwk]}

    def _sign(self, claims: dict) -> str:
        now = int(self._clock())
        payload = {**claims, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + self._access_ttl,
                   "jti": uuid.uuid4().hex}
        return jwt.encode(payload, self._key, algorithm="EdDSA", headers={"kid": self._kid})


def new_refresh_token(username: str, session_id: str) -> tuple[str, str]:
    """Returns (token, sha256 of its secret). The token names its user and session, not a secret of ours."""
    secret = secrets.token_urlsafe(32)
    head = base64.urlsafe_b64encode(json.dumps([username, session_id]).encode()).rstrip(b"=").decode()
    return f"{head}.{secret}", hash_secret(secret)


def parse_refresh_token(token: str) -> tuple[str, str, str]:
    """Returns (username, session_id, secret hash) or raises InvalidToken."""
    try:
        head, secret = token.split(".", 1)
        username, session_id = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
        if not (isinstance(username, str) and isinstance(session_id, str) and secret):
            raise ValueError
    except (ValueError, TypeError, AttributeError):
        raise InvalidToken("malformed refresh token") from None
    return username, session_id, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
