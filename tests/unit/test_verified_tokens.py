"""Access tokens remembered as verified still expire, and still die with their signing key."""

from __future__ import annotations

import pytest

from commands.errors import InvalidToken, TokenExpired
from commands.identity.tokens import KeyRing, TokenIssuer


def test_a_remembered_token_expires_and_a_removed_key_ends_it(tmp_path):
    now = [1_000_000.0]
    issuer = TokenIssuer(KeyRing(tmp_path / "ring.pem", 60), 60, clock=lambda: now[0])
    token = issuer.access_token("alice", "s1")
    assert issuer.verify_access(token)["sub"] == "alice"
    assert issuer.verify_access(token)["sub"] == "alice"          # from the cache
    issuer._keys = {}                                              # the key was retired and deleted
    with pytest.raises(InvalidToken):
        issuer.verify_access(token)
    issuer._install(issuer._ring.load())
    assert issuer.verify_access(token)["sid"] == "s1"
    now[0] += 120
    with pytest.raises(TokenExpired):
        issuer.verify_access(token)
