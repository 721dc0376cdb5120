"""Signed, short-lived JWTs (EdDSA, rotating keys named by `kid`) and opaque rotating refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from commands.errors import InvalidToken, TokenExpired
from commands.secret_files import read_secret, write_secret

ISSUER = "iotcloud"
AUDIENCE = "iotcloud-api"
LEEWAY = 5
VERIFIED_CACHE = 20_000  # access tokens remembered as verified, per process


class SigningKey:
    """One Ed25519 key of the ring, named by `kid` (a hash of its public key)."""

    def __init__(self, key: Ed25519PrivateKey, created: float, path: Path):
        self.key, self.created, self.path = key, created, path
        self.public = key.public_key()
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = hashlib.sha256(raw).hexdigest()[:16]
        self.jwk = {"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
                    "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}


class KeyRing:
    """Token-signing keys on disk: the first one at `path`, rotated ones as `<path stem>.d/<created>-<kid>.pem`.
    The newest signs; a replaced key keeps verifying for one token lifetime after its successor appeared."""

    def __init__(self, path: Path, access_ttl: int, clock=time.time):
        self.path, self._access_ttl, self._clock = path, access_ttl, clock
        self.rotated_dir = path.with_name(path.stem + ".d")

    def load(self) -> list[SigningKey]:
        """Every live key, oldest first (creating the first one if there is none)."""
        keys = self._read()
        if not keys:
            _write_new_key(self.path)
            keys = self._read()
        return self._live(keys)

    def rotate(self) -> SigningKey:
        """A new signing key; keys retired for longer than a token lifetime are deleted."""
        self.load()
        self.rotated_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        created = self._clock()
        signing = SigningKey(key, created, self.rotated_dir / "pending")
        path = self.rotated_dir / f"{int(created * 1000):015d}-{signing.kid}.pem"
        _write_new_key(path, key)
        for retired in self._expired(self._read()):
            retired.path.unlink(missing_ok=True)
        return self.load()[-1]

    def _read(self) -> list[SigningKey]:
        keys = []
        if self.path.exists():
            keys.append(SigningKey(_load_key(self.path), 0.0, self.path))
        if self.rotated_dir.is_dir():
            for path in sorted(self.rotated_dir.glob("*.pem")):
                keys.append(SigningKey(_load_key(path), int(path.name.split("-", 1)[0]) / 1000, path))
        return sorted(keys, key=lambda k: k.created)

    def _expired(self, keys: list[SigningKey]) -> list[SigningKey]:
        """Keys whose successor has existed for longer than any token they signed can live."""
        now = self._clock()
        return [key for key, successor in zip(keys, keys[1:])
                if successor.created + self._access_ttl + LEEWAY < now]

    def _live(self, keys: list[SigningKey]) -> list[SigningKey]:
        expired = {id(k) for k in self._expired(keys)}
        return [k for k in keys if id(k) not in expired]


def _load_key(path: Path) -> Ed25519PrivateKey:
    return serialization.load_pem_private_key(read_secret(path), password=None)


def _write_new_key(path: Path, key: Ed25519PrivateKey | None = None) -> None:
    key = key or Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        write_secret(path, pem)  # 0600, atomic, never through a planted symlink
    except FileExistsError:
        pass  # another process created it first; theirs is used


class TokenIssuer:
    """Signs access and id tokens with the newest key of a `KeyRing` and verifies by `kid` against all
    live keys, so tokens signed before a rotation stay valid for their lifetime."""

    RELOAD_EVERY = 60.0   # seconds between re-reads of the ring, to pick up another process's rotation
    UNKNOWN_KID_RELOAD = 1.0  # at most one extra re-read a second for unknown kids (they may be new)

    def __init__(self, ring: KeyRing, access_ttl: int, clock=time.time):
        self._ring = ring
        self._access_ttl = access_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._verified: dict[str, tuple[dict, str]] = {}
        self._install(ring.load())

    @classmethod
    def load_or_create(cls, path: Path, access_ttl: int) -> "TokenIssuer":
        return cls(KeyRing(path, access_ttl), access_ttl)

    @property
    def access_ttl(self) -> int:
        return self._access_ttl

    @property
    def signing_kid(self) -> str:
        return self._signing.kid

    def rotate(self) -> str:
        """Makes a new signing key (also for other processes, which pick it up within RELOAD_EVERY)."""
        self._ring.rotate()
        self.reload()
        return self._signing.kid

    def reload(self) -> None:
        self._install(self._ring.load())

    def access_token(self, username: str, session_id: str) -> str:
        return self._sign({"sub": username, "username": username, "sid": session_id, "token_use": "access"})

    def id_token(self, username: str, profile: dict) -> str:
        return self._sign({"sub": username, "token_use": "id", **profile})

    def verify_access(self, token: str) -> dict:
        """The claims of a valid access token. A token that verified once is remembered until it
        expires (the signature check is a third of a device call's API time); its key must still be
        in the ring at every use, so retiring a key still ends its tokens."""
        known = self._verified.get(token)
        if known is not None:
            claims, kid = known
            if claims["exp"] + LEEWAY >= self._clock() and kid in self._keys:
                return claims
            self._verified.pop(token, None)
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = (claims, jwt.get_unverified_header(token).get("kid"))
        return claims

    def _verify(self, token: str) -> dict:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"access token rejected: {exc}") from None
        key = self._key_for(kid)
        try:
            # Times are checked against our own clock below, so tests can move it.
            claims = jwt.decode(token, key.public, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
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
        self._maybe_reload(self.RELOAD_EVERY)
        return {"keys": [key.jwk for key in self._keys.values()]}

    def _key_for(self, kid) -> SigningKey:
        if not isinstance(kid, str):
            raise InvalidToken("access token rejected: no key id (kid)")
        key = self._keys.get(kid)
        if key is None and self._maybe_reload(self.UNKNOWN_KID_RELOAD):
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("access token rejected: unknown or retired signing key")
        return key

    def _maybe_reload(self, after: float) -> bool:
        with self._lock:
            if time.monotonic() - self._loaded_at < after:
                return False
            self._loaded_at = time.monotonic()  # claimed before reading, so one thread reads at a time
        self.reload()
        return True

    def _install(self, keys: list[SigningKey]) -> None:
        with self._lock:
            self._keys = {key.kid: key for key in keys}
            self._signing = keys[-1]
            self._loaded_at = time.monotonic()

    def _sign(self, claims: dict) -> str:
        self._maybe_reload(self.RELOAD_EVERY)
        now = int(self._clock())
        payload = {**claims, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + self._access_ttl,
                   "jti": uuid.uuid4().hex}
        signing = self._signing
        return jwt.encode(payload, signing.key, algorithm="EdDSA", headers={"kid": signing.kid})


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
