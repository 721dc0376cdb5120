"""The embedded identity provider: sign-up, codes, login, tokens, reset — on every event store."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from commands.accounts import Accounts
from commands.domain.accounts import UserAccount
from commands.errors import (InvalidCode, InvalidCredentials, InvalidToken, NotConfirmed, TokenExpired,
                             TooManyAttempts, UnknownUser, ValidationFailed)
from commands.identity.local import LocalIdentityProvider
from commands.identity.tokens import TokenIssuer
from gateways.outbox import Outbox


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def outbox(tmp_path):
    return Outbox(tmp_path / "outbox.sqlite3")


@pytest.fixture
def identity(make_settings, any_store, clock, outbox):
    settings = make_settings(any_store)
    accounts = Accounts(env=settings.event_store_env("Accounts"))
    tokens = TokenIssuer.load_or_create(settings.state_dir / "keys" / "t.pem", access_ttl=900)
    tokens._clock = clock
    provider = LocalIdentityProvider(accounts, tokens, outbox, b"k" * 32, refresh_ttl=86400, code_ttl=3600,
                                     max_failures=3, max_delay=600, hasher=PasswordHasher(time_cost=1, memory_cost=8192),
                                     clock=clock)
    provider.accounts = accounts
    yield provider
    accounts.close()


def last_code(outbox: Outbox, to: str) -> str:
    return re.search(r"code is (\d{6})", outbox.messages(limit=1, recipient=to)[0]["body"]).group(1)


def sign_up(identity, username="alice", email="alice@example.com", password="correct horse"):
    identity.sign_up(username, password, email, "Alice", "Liddell")


def confirmed(identity, outbox, username="alice", email="alice@example.com"):
    sign_up(identity, username, email)
    identity.confirm_sign_up(username, last_code(outbox, email))


class TestSignUp:
    def test_sends_a_six_digit_code_and_stores_only_a_hash(self, identity, outbox):
        sign_up(identity)
        code = last_code(outbox, "alice@example.com")
        account = identity.accounts.account("alice")
        assert not account.confirmed
        states = b"".join(n.state for n in identity.accounts.recorder.select_notifications(start=1, limit=50))
        assert code.encode() not in states
        assert b"correct horse" not in states
        assert b"$argon2id$" in states

    def test_username_and_email_are_unique(self, identity, outbox):
        # Issue 6 finding 6: a taken name or address no longer raises (that told anyone it exists);
        # nothing is created and the address's owner is emailed instead.
        sign_up(identity)
        sign_up(identity, "ALICE", "other@example.com")
        assert identity.accounts.account("alice").email == "alice@example.com"
        assert "already taken" in outbox.messages(limit=1, recipient="other@example.com")[0]["body"]
        sign_up(identity, "alice2", "Alice@Example.com")
        with pytest.raises(UnknownUser):
            identity.accounts.account("alice2")
        assert outbox.messages(limit=1, recipient="alice@example.com")[0]["subject"] == \
            "Someone tried to sign up with your address"

    @pytest.mark.parametrize("field,value", [("username", "a"), ("password", "short"), ("email", "not-an-email")])
    def test_rejects_bad_fields(self, identity, field, value):
        args = {"username": "alice", "password": "correct horse", "email": "alice@example.com"}
        args[field] = value
        with pytest.raises(ValidationFailed):
            identity.sign_up(args["username"], args["password"], args["email"], "Alice", "Liddell")


class TestConfirmation:
    def test_wrong_code_is_rejected_and_the_right_one_works_once(self, identity, outbox):
        sign_up(identity)
        code = last_code(outbox, "alice@example.com")
        with pytest.raises(InvalidCode):
            identity.confirm_sign_up("alice", "000000" if code != "000000" else "111111")
        identity.confirm_sign_up("alice", code)
        with pytest.raises(InvalidCode):  # not AlreadyConfirmed: that told anyone the account exists (issue 6)
            identity.confirm_sign_up("alice", code)

    def test_code_expires(self, identity, outbox, clock):
        sign_up(identity)
        clock.now += 3601
        with pytest.raises(InvalidCode):
            identity.confirm_sign_up("alice", last_code(outbox, "alice@example.com"))

    def test_resend_replaces_the_code(self, identity, outbox):
        sign_up(identity)
        old = last_code(outbox, "alice@example.com")
        identity.resend_confirmation_code("alice")
        new = last_code(outbox, "alice@example.com")
        if old != new:
            with pytest.raises(InvalidCode):
                identity.confirm_sign_up("alice", old)
        identity.confirm_sign_up("alice", new)

    def test_five_wrong_guesses_burn_the_code(self, identity, outbox):
        sign_up(identity)
        code = last_code(outbox, "alice@example.com")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(5):
            with pytest.raises(InvalidCode):
                identity.confirm_sign_up("alice", wrong)
        with pytest.raises(InvalidCode):
            identity.confirm_sign_up("alice", code)


class TestLogin:
    def test_unconfirmed_users_cannot_log_in(self, identity):
        sign_up(identity)
        with pytest.raises(NotConfirmed):
            identity.login("alice", "correct horse")

    def test_unknown_user_and_wrong_password_look_the_same(self, identity, outbox):
        confirmed(identity, outbox)
        with pytest.raises(InvalidCredentials) as unknown:
            identity.login("nobody", "correct horse")
        with pytest.raises(InvalidCredentials) as wrong:
            identity.login("alice", "wrong password")
        assert str(unknown.value) == str(wrong.value)

    def test_access_token_names_the_user_and_session(self, identity, outbox):
        confirmed(identity, outbox)
        tokens = identity.login("alice", "correct horse")
        principal = identity.authenticate(tokens.access_token)
        assert principal.username == "alice"
        assert tokens.expires_in == 900

    def test_failures_slow_down_that_client_then_recover(self, identity, outbox, clock):
        # Issue 6 finding 5: a short, per-client delay replaces the 10-minute lockout of the account.
        confirmed(identity, outbox)
        for _ in range(3):
            with pytest.raises(InvalidCredentials):
                identity.login("alice", "wrong password", client="10.0.0.66")
        with pytest.raises(TooManyAttempts) as slowed:
            identity.login("alice", "correct horse", client="10.0.0.66")
        assert slowed.value.retry_after == 1
        assert identity.login("alice", "correct horse", client="10.0.0.1").access_token
        clock.now += 1
        assert identity.login("alice", "correct horse", client="10.0.0.66").access_token


class TestTokens:
    def test_expired_access_token_is_refused_as_expired(self, identity, outbox, clock):
        confirmed(identity, outbox)
        tokens = identity.login("alice", "correct horse")
        clock.now += 1000
        with pytest.raises(TokenExpired):
            identity.authenticate(tokens.access_token)

    def test_tampered_token_is_refused(self, identity, outbox):
        confirmed(identity, outbox)
        token = identity.login("alice", "correct horse").access_token
        head, payload, signature = token.split(".")
        with pytest.raises(InvalidToken):
            identity.authenticate(f"{head}.{payload}.{signature[::-1]}")

    def test_refresh_rotates_and_reuse_revokes_the_session(self, identity, outbox):
        confirmed(identity, outbox)
        first = identity.login("alice", "correct horse")
        second = identity.refresh(first.refresh_token)
        assert second.refresh_token != first.refresh_token
        identity.authenticate(second.access_token)
        with pytest.raises(InvalidToken):
            identity.refresh(first.refresh_token)
        with pytest.raises(InvalidToken):
            identity.refresh(second.refresh_token)
        with pytest.raises(InvalidToken):
            identity.authenticate(second.access_token)

    def test_logout_revokes_refresh_and_access_tokens(self, identity, outbox):
        confirmed(identity, outbox)
        tokens = identity.login("alice", "correct horse")
        identity.logout(identity.authenticate(tokens.access_token))
        with pytest.raises(InvalidToken):
            identity.authenticate(tokens.access_token)
        with pytest.raises(InvalidToken):
            identity.refresh(tokens.refresh_token)

    @pytest.mark.parametrize("garbage", ["", "x", "a.b", "e30.e30.e30", None])
    def test_garbage_refresh_tokens_are_invalid(self, identity, garbage):
        with pytest.raises((InvalidToken, ValidationFailed)):
            identity.refresh(garbage)


class TestPasswordReset:
    def test_reset_by_email_changes_the_password_and_ends_sessions(self, identity, outbox):
        confirmed(identity, outbox)
        tokens = identity.login("alice", "correct horse")
        identity.forgot_password(email="alice@example.com")
        identity.confirm_forgot_password("alice", last_code(outbox, "alice@example.com"), "battery staple")
        with pytest.raises(InvalidToken):
            identity.authenticate(tokens.access_token)
        with pytest.raises(InvalidCredentials):
            identity.login("alice", "correct horse")
        assert identity.login("alice", "battery staple").access_token

    def test_unknown_email(self, identity, outbox):
        # Issue 6 finding 6: no UnknownEmail any more; the same (silent) answer as for a known address.
        assert identity.forgot_password(email="nobody@example.com") is None
        assert outbox.messages(limit=1, recipient="nobody@example.com") == []

    def test_reset_code_is_single_use(self, identity, outbox):
        confirmed(identity, outbox)
        identity.forgot_password(username="alice")
        code = last_code(outbox, "alice@example.com")
        identity.confirm_forgot_password("alice", code, "battery staple")
        with pytest.raises(InvalidCode):
            identity.confirm_forgot_password("alice", code, "another one!")


def test_account_ids_are_case_insensitive_usernames():
    assert UserAccount.create_id("Alice") == UserAccount.create_id("alice")


class TestThrottles:
    """Issue 6 findings 3 and 5 on the provider itself, with a clock the test moves."""

    def test_login_waits_double_per_client_and_a_success_clears_them(self, identity, outbox, clock):
        confirmed(identity, outbox)
        waits = []
        for _ in range(6):
            try:
                identity.login("alice", "wrong password", client="mallory")
            except InvalidCredentials:
                continue
            except TooManyAttempts as slowed:
                waits.append(slowed.retry_after)
                clock.now += slowed.retry_after
        assert waits == [1, 2]  # 3 free failures, then 1 s, 2 s (each wait spent, then one more failure)
        assert identity.login("alice", "correct horse", client="alice-laptop").access_token
        clock.now += 4
        assert identity.login("alice", "correct horse", client="mallory").access_token
        with pytest.raises(InvalidCredentials):  # cleared: the next failure is free again
            identity.login("alice", "wrong password", client="mallory")

    def test_codes_are_issued_five_times_an_hour_per_name_and_per_account(self, identity, outbox, clock):
        confirmed(identity, outbox)
        sent = lambda: len(outbox.messages(recipient="alice@example.com"))  # noqa: E731
        before = sent()
        for _ in range(5):
            identity.forgot_password(username="alice")
            identity.forgot_password(username="ghost")
        for name in ("alice", "ghost"):
            with pytest.raises(TooManyAttempts) as throttled:
                identity.forgot_password(username=name)
            assert 0 < throttled.value.retry_after <= 3600
        identity.forgot_password(email="alice@example.com")  # another name for the same account:
        assert sent() - before == 5                          # answered, but no sixth code is sent
        clock.now += 3601
        identity.forgot_password(username="alice")
        assert sent() - before == 6

    def test_a_forged_refresh_token_is_refused_without_ending_the_session(self, identity, outbox):
        import base64
        import json
        confirmed(identity, outbox)
        tokens = identity.login("alice", "correct horse")
        session_id = identity.authenticate(tokens.access_token).session_id
        head = base64.urlsafe_b64encode(json.dumps(["alice", session_id]).encode()).rstrip(b"=").decode()
        with pytest.raises(InvalidToken, match="unknown refresh token"):
            identity.refresh(f"{head}.not-our-secret")
        assert identity.refresh(tokens.refresh_token).access_token
