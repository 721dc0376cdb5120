"""Access-control matrix: every operation the OpenAPI document lists x {owner, other user, no token,
expired token, malformed token, token signed by another key}.

The operations come from the served /openapi.json, so a new route fails this test until it is
given an expectation in EXPECTED. Protected /v1 routes must answer 401 problem+json to every bad
token; v2 routes carry their credentials in the body and answer with the NG envelope; public
routes must answer a caller with a token exactly as one without.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.conftest import Api
from tests.conftest import RunningPlatform

BAD_TOKENS = ("no_token", "expired", "malformed", "forged")
PRINCIPALS = ("owner", "other", *BAD_TOKENS)
NAMED = "{name}"


@dataclass(frozen=True)
class Expect:
    kind: str                      # "public", "v1" (Bearer), "v2" (credentials in the body), "v2-public"
    owner: frozenset[int] = frozenset()
    other: frozenset[int] = frozenset()
    body: dict | None = None       # route fields; v2 credentials are added per principal
    query: str = ""


def v1(owner, other, body=None, query=""):
    return Expect("v1", frozenset(owner), frozenset(other), body, query)


def v2(owner, other, **fields):
    return Expect("v2", frozenset(owner), frozenset(other), fields)


PUBLIC, V2_PUBLIC = Expect("public", body={}), Expect("v2-public", body={})
UNREACHABLE = (503, 504)  # authorised: the call reached the (absent) device
ASYNC = "?wait=false"

EXPECTED: dict[tuple[str, str], Expect] = {
    **{(path, "get"): PUBLIC for path in ("/healthz", "/readyz", "/problems", "/problems/{slug}",
                                          "/.well-known/jwks.json", "/openapi.json", "/v1/ca")},
    **{(f"/v1/auth/{route}", "post"): PUBLIC for route in ("signup", "confirm", "resend-code", "login", "refresh",
                                                            "forgot-password", "reset-password")},
    ("/v1/auth/logout", "post"): v1({204}, {204}),
    ("/v1/auth/logout-everywhere", "post"): v1({204}, {204}),
    ("/v1/me", "get"): v1({200}, {200}),
    ("/v1/devices", "get"): v1({200}, {200}),
    ("/v1/devices", "post"): v1({201}, {201}, {"name": "fresh"}),
    ("/v1/devices/_count", "get"): v1({200}, {200}),
    ("/v1/devices/{name}", "get"): v1({200}, {404}),
    ("/v1/devices/{name}", "delete"): v1({204}, {404}),
    ("/v1/devices/{name}/certificate", "post"): v1({200}, {404}),
    # The matrix device logs in by certificate: its owner is told so, anyone else that it does not exist.
    ("/v1/devices/{name}/password", "post"): v1({409}, {404}),
    ("/v1/devices/{name}/commands", "post"): v1({202}, {404}, {"api": "get_status", "wait": False}),
    ("/v1/commands/{command_id}", "get"): v1({200}, {404}),
    **{(f"/v1/devices/{{name}}/{api}", "get"): v1({202}, {404}, query=ASYNC)
       for api in ("status", "gpio/{number}", "rtc", "mac", "ip", "subnet", "gateway")},
    ("/v1/devices/{name}/status", "put"): v1({202}, {404}, {"value": "restart"}, ASYNC),
    ("/v1/devices/{name}/gpio/{number}", "put"): v1({202}, {404}, {"value": 1}, ASYNC),
    ("/v1/devices/{name}/rtc", "put"): v1({202}, {404}, {"value": 1700000000}, ASYNC),
    ("/v1/devices/{name}/uart", "put"): v1({202}, {404}, {"value": "hi"}, ASYNC),
    ("/v1/devices/{name}/notification", "put"): v1({202}, {404}, {"recipient": "a@example.com", "message": "hi"}, ASYNC),
    ("/v1/audit/devices/{device_id}/events", "get"): v1({200}, {403}),
    ("/v1/audit/devices/{device_id}/state", "get"): v1({200}, {403}),
    ("/v1/audit/verify", "get"): v1({403}, {403}),  # auditors only
    # administrators only (neither matrix user is one; admins: tests/api/test_admin_routes.py)
    **{(path, "get"): v1({403}, {403}) for path in ("/v1/admin/users", "/v1/admin/devices")},
    **{("/v1/admin/users/{username}/roles/{role}", method): v1({403}, {403}) for method in ("put", "delete")},
    # Refused (and recorded) before the device is called: the owner's refusal, the other user's 404.
    ("/v1/devices/{name}/notifications", "post"): v1({422}, {404}, {"recipient": "nobody", "message": "hi"}),
    ("/v1/notifications", "get"): v1({200}, {200}),
    ("/v1/notifications/{notification_id}", "get"): v1({200}, {404}),
    # the web app's long poll and device emulator (a PEM that is not one: refused after the ownership check)
    ("/v1/devices/_changes", "get"): v1({200}, {200}),
    ("/v1/emulator", "get"): v1({200}, {200}),
    ("/v1/emulator", "post"): v1({400}, {404}, {"name": NAMED, "certificate": "x", "private_key": "y"}),
    ("/v1/emulator", "delete"): v1({404}, {404}),
    **{(f"/user/{route}", "post"): V2_PUBLIC for route in ("signup", "confirm_signup", "resend_confirmation_code",
                                                           "forgot_password", "confirm_forgot_password", "login")},
    ("/user/logout", "post"): v2({200}, {200}),
    ("/user", "post"): v2({200}, {200}), ("/user", "get"): v2({200}, {200}),
    ("/devices", "post"): v2({200}, {200}), ("/devices", "get"): v2({200}, {200}),
    ("/devices/device", "post"): v2({200}, {200}, devicename="fresh"),
    ("/devices/device", "delete"): v2({200}, {400}, devicename=NAMED),
    ("/devices/device", "patch"): v2({200}, {400}, devicename=NAMED),
    **{(f"/devices/device/{api}", method): v2(UNREACHABLE, {400}, devicename=NAMED, number="1")
       for api in ("status", "gpio", "rtc", "mac", "ip", "subnet", "gateway") for method in ("post", "get")},
    ("/devices/device/status", "put"): v2(UNREACHABLE, {400}, devicename=NAMED, value="restart"),
    ("/devices/device/gpio", "put"): v2(UNREACHABLE, {400}, devicename=NAMED, number="1", value="1"),
    ("/devices/device/rtc", "put"): v2(UNREACHABLE, {400}, devicename=NAMED, value=1700000000),
    ("/devices/device/uart", "put"): v2(UNREACHABLE, {400}, devicename=NAMED, value="hi"),
    ("/devices/device/notification", "put"): v2(UNREACHABLE, {400}, devicename=NAMED, recipient="a@example.com",
                                               message="hi"),
    # history and analytics: everyone gets 200 with their own data only (another owner's: tests/history)
    **{(path, "get"): v1({200}, {200}) for path in ("/v1/history", "/v1/devices/{name}/history",
                                                     *(f"/v1/analytics/{kind}" for kind in (
                                                         "history", "commands", "outcomes", "latency", "online",
                                                         "export", "devices")))},
    **{(path, method): v2({200}, {200}) for path in ("/user/histories", "/devices/histories")
       for method in ("get", "post")},
}


class World:
    """An owner with a device (and a call to it) for each operation, another user, and bad tokens."""

    def __init__(self, api: Api):
        self.api = api
        self.owner, self.other = f"own{uuid.uuid4().hex[:8]}", f"oth{uuid.uuid4().hex[:8]}"
        api.signed_in(self.owner)
        api.signed_in(self.other)
        self.key_path = api.running.settings.state_dir / "keys" / "token-signing.pem"
        self._sessions: dict[str, dict] = {}
        self._device: tuple[str, str, str] | None = None
        self._notification: str | None = None

    def tokens(self, username: str) -> dict:
        """A session per user, reused until an operation may have ended it."""
        if username not in self._sessions:
            answer = self.api.post("/v1/auth/login", {"username": username, "password": "correct horse"})
            assert answer.status_code == 200, answer.text
            self._sessions[username] = answer.json
        return self._sessions[username]

    def owned_device(self) -> tuple[str, str, str]:
        """(name, device id, id of a call to it), reused until an operation may have unregistered it."""
        if self._device is None:
            name = f"lamp{uuid.uuid4().hex[:8]}"
            token = self.tokens(self.owner)["access_token"]
            registered = self.api.post("/v1/devices", {"name": name}, token)
            assert registered.status_code == 201, registered.text
            call = self.api.post(f"/v1/devices/{name}/commands", {"api": "get_status", "wait": False}, token)
            self._device = (name, registered.json["device_id"], call.json["command_id"])
        return self._device

    def owned_notification(self) -> str:
        """The id of a notification of the owner's (a refused one: no device needs to answer), projected."""
        if self._notification is None:
            name, _, _ = self.owned_device()
            token = self.tokens(self.owner)["access_token"]
            refused = self.api.post(f"/v1/devices/{name}/notifications", {"recipient": "x", "message": "m"}, token)
            assert refused.status_code == 422, refused.text
            self._notification = refused.json["notification_id"]
            deadline = time.monotonic() + 10
            while self.api.get(f"/v1/notifications/{self._notification}", token).status_code != 200:
                assert time.monotonic() < deadline, "the refused notification was never projected"
                time.sleep(0.05)
        return self._notification

    def after(self, path: str, method: str) -> None:
        if "logout" in path:
            self._sessions.clear()
        if method == "delete":
            self._device = None

    def bad_token(self, kind: str) -> str | None:
        if kind == "no_token":
            return None
        if kind == "malformed":
            return "not.a.jwt"
        valid = self.tokens(self.owner)["access_token"]
        claims, header = jwt.decode(valid, options={"verify_signature": False}), jwt.get_unverified_header(valid)
        extra = {k: v for k, v in header.items() if k not in ("alg", "typ")}
        if kind == "expired":  # signed with the platform's own key, expired half an hour ago
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
            now = int(time.time())
            return jwt.encode({**claims, "iat": now - 3600, "exp": now - 1800}, key, algorithm="EdDSA", headers=extra)
        return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=extra)  # forged

    def request(self, principal: str, path: str, method: str, expect: Expect):
        name, device_id, command_id = self.owned_device()
        url = (path.replace(NAMED, name).replace("{number}", "1").replace("{command_id}", command_id)
               .replace("{device_id}", device_id)
               .replace("{slug}", "device-not-found").replace("{username}", self.other)
               .replace("{role}", "analyst")) + expect.query
        if "{notification_id}" in url:
            url = url.replace("{notification_id}", self.owned_notification())
        body = {k: (name if v == NAMED else f"n{uuid.uuid4().hex[:8]}" if v == "fresh" else v)
                for k, v in (expect.body or {}).items()}
        username = self.other if principal == "other" else self.owner
        tokens = self.tokens(username) if principal in ("owner", "other") else None
        bearer = tokens["access_token"] if tokens else self.bad_token(principal)
        headers = {"Content-Type": "application/json"}
        if expect.kind == "v2":
            body["username"] = username
            if tokens:
                body["token"] = {"access": tokens["access_token"], "refresh": tokens["refresh_token"],
                                 "id": tokens["id_token"]}
            elif bearer:
                body["token"] = {"access": bearer}  # no refresh token: an expired one cannot be renewed
        elif bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        answer = self.api.client.simulate_request(method.upper(), url, headers=headers,
                                                  body=json.dumps(body) if expect.body is not None or
                                                  expect.kind.startswith("v2") else None)
        self.after(path, method)
        return answer, device_id


@pytest.fixture
def world(make_settings):
    running = RunningPlatform(make_settings("sqlite", command_timeout=0.1))
    yield World(Api(running))
    running.close()


def url_of(answer) -> str:
    """The problem's `instance` echoes the path the caller asked for (an id they sent, not one shown)."""
    return answer.json.get("instance", "") if answer.headers.get("content-type") == "application/problem+json" else ""


def served_operations(api: Api) -> list[tuple[str, str]]:
    document = api.get("/openapi.json").json
    return sorted((path, method) for path, methods in document["paths"].items() for method in methods)


def test_every_served_operation_has_an_expectation(world):
    missing = [op for op in served_operations(world.api) if op not in EXPECTED]
    assert not missing, f"add these operations to the access matrix: {missing}"
    stale = [op for op in EXPECTED if op not in served_operations(world.api)]
    assert not stale, f"the access matrix lists operations the API no longer serves: {stale}"


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_access_matrix(world, principal):
    wrong = []
    for path, method in served_operations(world.api):
        expect = EXPECTED[(path, method)]
        answer, device_id = world.request(principal, path, method, expect)
        status, text = answer.status_code, answer.text
        label = f"{method.upper()} {path} as {principal}: {status} {text[:160]}"
        if status >= 500 and expect.kind != "v2":
            wrong.append(label)
        elif expect.kind == "public":
            anonymous = world.request("no_token", path, method, expect)[0].status_code
            if status != anonymous:
                wrong.append(f"{label} (without a token: {anonymous})")
            elif status >= 400 and answer.headers.get("content-type") != "application/problem+json":
                wrong.append(label)
        elif expect.kind == "v2-public":
            if status != 400 or answer.json.get("status") != "NG":
                wrong.append(label)
        elif principal in ("owner", "other"):
            if status not in getattr(expect, principal):
                wrong.append(label)
            elif principal == "other" and device_id in text.replace(f'"instance": "{url_of(answer)}"', ""):
                wrong.append(f"{label} (shows the owner's device)")
        elif expect.kind == "v1":
            if (status != 401 or answer.headers.get("content-type") != "application/problem+json"
                    or answer.json["type"] not in ("/problems/invalid-token", "/problems/token-expired")):
                wrong.append(label)
        elif expect.kind == "v2":
            allowed = {400, 401} if principal == "no_token" else {401}
            if status not in allowed or answer.json.get("status") != "NG":
                wrong.append(label)
    assert not wrong, "\n".join(wrong)
