"""Broker passwords of devices registered with `"login": "password"`: generated here, stored only as a hash.

The secret is 256 random bits, so no guessing or dictionary attack applies to it, and a memory-hard hash
(Argon2id, right for human passwords) would buy nothing but cost: the broker asks its auth backend on
every device connect (logins are not cached), and ~50 ms of Argon2id per connect would cap a fleet
reconnecting after a broker restart at a few dozen devices a second per core. A SHA-256 of a 256-bit secret
is preimage-resistant and takes microseconds; a leaked event store yields no usable password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SCHEME = "sha256"
SECRET_BYTES = 32
MAX_PRESENTED = 128  # longer presented passwords are refused unhashed


def new_broker_password() -> tuple[str, str]:
    """(the password, shown once; its stored hash). Never starting with '-': devices take it on a command
    line (libpyiotcloud's `--USE_PASSWORD`), where a leading dash reads as an option."""
    password = secrets.token_urlsafe(SECRET_BYTES)
    while password.startswith("-"):
        password = secrets.token_urlsafe(SECRET_BYTES)
    return password, broker_password_hash(password)


def broker_password_hash(password: str) -> str:
    return f"{SCHEME}${hashlib.sha256(password.encode()).hexdigest()}"


def broker_password_matches(stored_hash: str | None, presented: str | None) -> bool:
    if not stored_hash or not presented or len(presented) > MAX_PRESENTED:
        return False
    return hmac.compare_digest(stored_hash.encode(), broker_password_hash(presented).encode())
