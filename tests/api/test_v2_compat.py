"""libpyiotcloud v2 routes: request and response shapes exactly as the seed's clients expect."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from commands.identity.tokens import TokenIssuer


def v2(api, method: str, path: str, body) -> tuple[int, dict, str]:
    answer = api.client.simulate_request(method, path, body=json.dumps(body),
                                         headers={"Content-Type": "application/json"})
    return answer.status_code, answer.json, answer.text


def confirmed_v2_user(api) -> tuple[str, dict]:
    username = f"v2{uuid.uuid4().hex[:8]}"
    status, body, text = v2(api, "POST", "/user/signup", {"username": username, "password": "correct horse",
                                                          "email": f"{username}@example.com",
                                                          "givenname": "Ada", "familyname": "Lovelace"})
    assert status == 200
    assert text == '{"status": "OK", "message": "User registered successfully. Check email for confirmation code."}'
    code = api.code_for(f"{username}@example.com")
    assert v2(api, "POST", "/user/confirm_signup", {"username": username, "confirmationcode": code})[1]["status"] == "OK"
    status, body, _ = v2(api, "POST", "/user/login", {"username": username, "password": "correct horse"})
    assert status == 200 and body["status"] == "OK"
    assert list(body) == ["status", "message", "token"] and set(body["token"]) == {"access", "refresh", "id"}
    return username, body["token"]


def test_account_flow(api):
    username, token = confirmed_v2_user(api)
    for method in ("POST", "GET"):
        status, body, _ = v2(api, method, "/user", {"username": username, "token": token})
        assert status == 200
        assert body["info"] == {"email": f"{username}@example.com", "given_name": "Ada", "family_name": "Lovelace"}
    # Issue 6 (enumeration): resend answers OK for confirmed users too; forgot_password echoes the email.
    assert v2(api, "POST", "/user/resend_confirmation_code", {"username": username})[0] == 200
    status, body, _ = v2(api, "POST", "/user/forgot_password", {"email": f"{username}@example.com"})
    assert status == 200 and body["username"] == f"{username}@example.com"
    code = api.code_for(f"{username}@example.com")
    assert v2(api, "POST", "/user/confirm_forgot_password", {"username": username, "confirmationcode": code,
                                                             "password": "battery staple"})[0] == 200
    new_token = v2(api, "POST", "/user/login", {"username": username, "password": "battery staple"})[1]["token"]
    status, body, _ = v2(api, "POST", "/user/logout", {"username": username, "token": new_token})
    assert (status, body["status"]) == (200, "OK")
    status, body, _ = v2(api, "POST", "/user", {"username": username, "token": new_token})
    assert (status, body) == (401, {"status": "NG", "message": "Unauthorized access"})


@pytest.mark.parametrize("path,body,status,message", [
    ("/user/signup", {"username": "x"}, 400, "Empty parameter found"),
    ("/user/signup", {"username": "abcd", "password": "short", "email": "a@b.co", "givenname": "a", "familyname": "b"},
     400, "Password length should at least be 8 characters"),
    ("/user/confirm_signup", {"username": "ghost-user", "confirmationcode": "123456"}, 400, "Invalid code"),
    ("/user/login", {"username": "ghost-user", "password": "whatever1"}, 401, "Unauthorized access"),
    ("/user/login", {"username": "", "password": ""}, 400, "Empty parameter found"),
    ("/devices", {"username": "ghost-user", "token": {"access": "x", "refresh": "y", "id": "z"}}, 401, "Unauthorized access"),
    ("/devices", {"username": "ghost-user"}, 400, "Empty parameter found"),
])
def test_errors_use_the_ng_envelope(api, path, body, status, message):
    got_status, got, _ = v2(api, "POST", path, body)
    assert (got_status, got) == (status, {"status": "NG", "message": message})


def test_invalid_json_is_ng_not_500(api):
    answer = api.client.simulate_post("/user/login", body="{oops", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json["status"] == "NG"


def test_duplicate_username(api):
    username, _ = confirmed_v2_user(api)
    status, body, _ = v2(api, "POST", "/user/signup", {"username": username, "password": "correct horse",
                                                       "email": "other@example.com", "givenname": "a", "familyname": "b"})
    # Issue 6 (enumeration): the same OK as a new sign-up; the address is told the username is taken.
    assert (status, body["status"]) == (200, "OK")
    assert "already taken" in api.outbox.messages(limit=1, recipient="other@example.com")[0]["body"]


def test_device_flow(api):
    username, token = confirmed_v2_user(api)
    auth = {"username": username, "token": token}
    status, body, _ = v2(api, "POST", "/devices/device", {**auth, "devicename": "ft900device1"})
    assert status == 200 and body["status"] == "OK"
    device = body["device"]
    assert list(device) == ["devicename", "deviceid", "cert", "pkey", "ca"]
    cert = x509.load_pem_x509_certificate(device["cert"].encode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device["deviceid"]
    assert device["pkey"].startswith("-----BEGIN PRIVATE KEY")
    status, body, _ = v2(api, "POST", "/devices/device", {**auth, "devicename": "ft900device1"})
    assert (status, body) == (409, {"status": "NG", "message": "Device is already registered"})
    for method in ("POST", "GET"):
        status, body, _ = v2(api, method, "/devices", auth)
        assert status == 200
        assert body["devices"] == [{"devicename": "ft900device1", "deviceid": device["deviceid"],
                                    "cert": device["cert"], "pkey": ""}]
    status, body, _ = v2(api, "PATCH", "/devices/device", {**auth, "devicename": "ft900device1"})
    assert status == 200 and body["device"]["deviceid"] == device["deviceid"] and body["device"]["pkey"] == ""
    assert v2(api, "DELETE", "/devices/device", {**auth, "devicename": "ft900device1"})[1]["status"] == "OK"
    status, body, _ = v2(api, "DELETE", "/devices/device", {**auth, "devicename": "ft900device1"})
    assert (status, body) == (400, {"status": "NG", "message": "Device is not registered"})
    assert v2(api, "POST", "/devices", auth)[1]["devices"] == []


def test_another_users_device_is_not_registered_for_them(api):
    alice, alice_token = confirmed_v2_user(api)
    mallory, mallory_token = confirmed_v2_user(api)
    v2(api, "POST", "/devices/device", {"username": alice, "token": alice_token, "devicename": "secret"})
    for method in ("PATCH", "DELETE"):
        status, body, text = v2(api, method, "/devices/device", {"username": mallory, "token": mallory_token,
                                                                 "devicename": "secret"})
        assert (status, body) == (400, {"status": "NG", "message": "Device is not registered"})
    # Someone else's token with your username is refused.
    status, body, _ = v2(api, "POST", "/devices", {"username": alice, "token": mallory_token})
    assert (status, body["status"]) == (401, "NG")


def test_expired_access_token_is_refreshed_silently(api):
    username, token = confirmed_v2_user(api)
    settings = api.running.settings
    issuer = TokenIssuer.load_or_create(settings.state_dir / "keys" / "token-signing.pem", settings.access_token_ttl)
    session_id = api.platform.identity.authenticate(token["access"]).session_id
    issuer._clock = lambda: time.time() - 3600
    expired = {**token, "access": issuer.access_token(username, session_id)}
    status, body, _ = v2(api, "POST", "/devices", {"username": username, "token": expired})
    assert status == 200 and body["status"] == "OK"
    assert set(body["new_token"]) == {"access", "refresh", "id"}
    assert body["new_token"]["refresh"] != token["refresh"]
    assert v2(api, "POST", "/devices", {"username": username, "token": body["new_token"]})[0] == 200
