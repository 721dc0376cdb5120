"""Issue 6 finding 10: token-signing keys rotate; tokens are verified by `kid` against every live key."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from commands.errors import InvalidToken
from commands.identity.tokens import AUDIENCE, ISSUER, KeyRing, TokenIssuer
from iotcloud.cli import main as cli_main


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def issuer_at(path, clock, ttl=900) -> TokenIssuer:
    return TokenIssuer(KeyRing(path, ttl, clock), ttl, clock)


def test_tokens_of_the_previous_key_still_verify_after_a_rotation(tmp_path):
    clock = Clock()
    path = tmp_path / "keys" / "token-signing.pem"
    issuer = issuer_at(path, clock)
    before = issuer.access_token("alice", "s1")
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = issuer.rotate()
    after = issuer.access_token("alice", "s2")
    assert new_kid != old_kid and jwt.get_unverified_header(after)["kid"] == new_kid
    assert {k["kid"] for k in issuer.jwks()["keys"]} == {old_kid, new_kid}
    other_process = issuer_at(path, clock)  # e.g. another API worker, loading the ring from disk
    for verifier in (issuer, other_process):
        assert verifier.verify_access(before)["sid"] == "s1"
        assert verifier.verify_access(after)["sid"] == "s2"
    # Once no token of the old key can be alive, the next rotation retires it.
    clock.now += 900 + 10
    issuer.rotate()
    assert old_kid not in {k["kid"] for k in issuer.jwks()["keys"]}
    with pytest.raises(InvalidToken, match="unknown or retired"):
        issuer.verify_access(before)


def test_an_unknown_or_missing_kid_is_refused(tmp_path):
    clock = Clock(time.time())
    issuer = issuer_at(tmp_path / "token-signing.pem", clock)
    now = int(clock.now)
    claims = {"sub": "alice", "sid": "s", "token_use": "access", "iss": ISSUER, "aud": AUDIENCE,
              "iat": now, "exp": now + 900}
    stranger = Ed25519PrivateKey.generate()
    for headers in ({"kid": "0123456789abcdef"}, {}, {"kid": issuer.signing_kid}):
        with pytest.raises(InvalidToken):
            issuer.verify_access(jwt.encode(claims, stranger, algorithm="EdDSA", headers=headers))
    # Even our own key's signature counts only under its own kid (before the fix any kid passed).
    own = issuer._signing.key
    for headers in ({"kid": "0123456789abcdef"}, {}):
        with pytest.raises(InvalidToken):
            issuer.verify_access(jwt.encode(claims, own, algorithm="EdDSA", headers=headers))
    assert issuer.verify_access(jwt.encode(claims, own, algorithm="EdDSA", headers={"kid": issuer.signing_kid}))


def test_another_process_picks_up_a_rotation_by_kid(tmp_path):
    clock = Clock(time.time())
    path = tmp_path / "token-signing.pem"
    api_worker, operator = issuer_at(path, clock), issuer_at(path, clock)
    api_worker._loaded_at -= TokenIssuer.UNKNOWN_KID_RELOAD  # as if loaded a while ago
    operator.rotate()
    assert api_worker.verify_access(operator.access_token("bob", "s"))["sub"] == "bob"


def test_the_keys_rotate_command_and_jwks_route(api, capsys, monkeypatch):
    settings = api.running.settings
    token = api.signed_in()
    before = {k["kid"] for k in api.get("/.well-known/jwks.json").json["keys"]}
    monkeypatch.setenv("IOTCLOUD_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("IOTCLOUD_ACCESS_TOKEN_TTL", str(settings.access_token_ttl))
    assert cli_main(["keys", "rotate"]) == 0
    assert "new token-signing key" in capsys.readouterr().out
    api.platform.identity._tokens.reload()  # API processes do this within RELOAD_EVERY seconds
    keys = {k["kid"] for k in api.get("/.well-known/jwks.json").json["keys"]}
    assert before < keys and len(keys) == 2
    assert api.get("/v1/me", token).status_code == 200
    assert api.get("/v1/me", api.signed_in()).status_code == 200
