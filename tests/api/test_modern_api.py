"""Every /v1 route and its error paths, over the real stores, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.api.conftest import assert_problem


def new_name() -> str:
    return f"u{uuid.uuid4().hex[:10]}"


class TestAccounts:
    def test_sign_up_confirm_login_profile(self, api):
        username = new_name()
        email = api.sign_up(username)
        me = api.post("/v1/auth/login", {"username": username, "password": "correct horse"})
        assert_problem(me, 403, "account-not-confirmed")
        assert api.post("/v1/auth/confirm", {"username": username, "code": api.code_for(email)}).json["status"] == "CONFIRMED"
        tokens = api.post("/v1/auth/login", {"username": username, "password": "correct horse"}).json
        assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
        profile = api.get("/v1/me", tokens["access_token"])
        assert profile.status_code == 200
        assert profile.json["email"] == email and profile.json["status"] == "CONFIRMED"
        assert "password_hash" not in profile.text

    @pytest.mark.parametrize("body,field", [
        ({"password": "correct horse", "email": "a@b.co", "given_name": "A", "family_name": "B"}, "username"),
        ({"username": "abc", "password": "short", "email": "a@b.co", "given_name": "A", "family_name": "B"}, "password"),
        ({"username": "abc", "password": "correct horse", "email": "nope", "given_name": "A", "family_name": "B"}, "email"),
        ({"username": "abc", "password": "correct horse", "email": "a@b.co", "given_name": 5, "family_name": "B"}, "given_name"),
    ])
    def test_sign_up_validation(self, api, body, field):
        answer = api.post("/v1/auth/signup", body)
        assert_problem(answer, 400, "validation-failed")
        assert answer.json["field"] == field

    def test_sign_up_duplicates(self, api):
        # Issue 6 (enumeration): 201 like a new sign-up; nothing is created and the address is emailed.
        username = new_name()
        api.sign_up(username)
        again = api.post("/v1/auth/signup", {"username": username, "password": "correct horse", "email": "x@example.com",
                                             "given_name": "A", "family_name": "B"})
        assert again.status_code == 201
        assert "already taken" in api.outbox.messages(limit=1, recipient="x@example.com")[0]["body"]
        other = new_name()
        email_reuse = api.post("/v1/auth/signup", {"username": other, "password": "correct horse",
                                                   "email": f"{username}@example.com", "given_name": "A", "family_name": "B"})
        assert email_reuse.status_code == 201
        assert_problem(api.post("/v1/auth/confirm", {"username": other, "code": "123456"}), 400, "invalid-code")

    def test_bodies_must_be_json_objects(self, api):
        assert_problem(api.client.simulate_post("/v1/auth/login", body="{nope", headers={"Content-Type": "application/json"}),
                       400, "validation-failed")
        assert_problem(api.client.simulate_post("/v1/auth/login", body="[]", headers={"Content-Type": "application/json"}),
                       400, "validation-failed")
        assert_problem(api.client.simulate_post("/v1/auth/login", body="a=b", headers={"Content-Type": "text/plain"}),
                       415, "unsupported-media-type")
        assert_problem(api.client.simulate_post("/v1/auth/login", body="x" * 70000,
                                                headers={"Content-Type": "application/json"}), 413, "payload-too-large")

    def test_confirmation_errors_and_resend(self, api):
        username = new_name()
        email = api.sign_up(username)
        assert_problem(api.post("/v1/auth/confirm", {"username": username, "code": "12345x"}), 400, "invalid-code")
        assert_problem(api.post("/v1/auth/confirm", {"username": "ghost-user", "code": "123456"}), 400, "invalid-code")
        assert api.post("/v1/auth/resend-code", {"username": username}).status_code == 202
        assert api.post("/v1/auth/confirm", {"username": username, "code": api.code_for(email)}).status_code == 200
        # Issue 6 (enumeration): confirmed and unknown users get the same 202 as unconfirmed ones.
        assert api.post("/v1/auth/resend-code", {"username": username}).status_code == 202
        assert api.post("/v1/auth/resend-code", {"username": "ghost-user"}).status_code == 202

    def test_wrong_password_then_throttled(self, api):
        # Issue 6 finding 5: the client that failed waits (a second, then doubling); no lockout of the owner.
        username = new_name()
        api.signed_in(username)
        for _ in range(api.running.settings.login_max_failures):
            assert_problem(api.post("/v1/auth/login", {"username": username, "password": "wrong wrong"}),
                           401, "invalid-credentials")
        for _ in range(8):  # the waits double (1 s, 2 s, ...), so a slow machine meets one within a few tries
            locked = api.post("/v1/auth/login", {"username": username, "password": "wrong wrong"})
            if locked.status_code == 429:
                break
        assert_problem(locked, 429, "too-many-attempts")
        assert 1 <= int(locked.headers["retry-after"]) <= 128
        assert_problem(api.post("/v1/auth/login", {"username": "ghost-user", "password": "x" * 9}), 401,
                       "invalid-credentials")

    def test_refresh_rotation_and_logout(self, api):
        username = new_name()
        api.signed_in(username)
        tokens = api.post("/v1/auth/login", {"username": username, "password": "correct horse"}).json
        rotated = api.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
        assert rotated.status_code == 200 and rotated.json["refresh_token"] != tokens["refresh_token"]
        assert_problem(api.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}), 401, "invalid-token")
        fresh = api.post("/v1/auth/login", {"username": username, "password": "correct horse"}).json
        assert api.post("/v1/auth/logout", token=fresh["access_token"]).status_code == 204
        assert_problem(api.get("/v1/me", fresh["access_token"]), 401, "invalid-token")
        assert_problem(api.post("/v1/auth/refresh", {"refresh_token": fresh["refresh_token"]}), 401, "invalid-token")

    def test_forgot_and_reset_password(self, api):
        username = new_name()
        api.signed_in(username)
        email = f"{username}@example.com"
        # Issue 6 (enumeration): an unknown address gets the same 202, and no username is returned.
        unknown = api.post("/v1/auth/forgot-password", {"email": "nobody@example.com"})
        assert unknown.status_code == 202
        assert api.post("/v1/auth/forgot-password", {"email": email}).json == unknown.json
        assert_problem(api.post("/v1/auth/reset-password", {"username": username, "code": "000000x",
                                                            "password": "battery staple"}), 400, "invalid-code")
        answer = api.post("/v1/auth/reset-password", {"username": username, "code": api.code_for(email),
                                                      "password": "battery staple"})
        assert answer.status_code == 200
        assert api.post("/v1/auth/login", {"username": username, "password": "battery staple"}).status_code == 200
        assert api.post("/v1/auth/forgot-password", {"username": username}).status_code == 202
        assert_problem(api.post("/v1/auth/forgot-password", {}), 400, "validation-failed")

    @pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer not.a.jwt", "Bearer " + "e30." * 2 + "x"])
    def test_private_routes_need_a_valid_bearer_token(self, api, header):
        answer = api.client.simulate_get("/v1/me", headers={"Authorization": header} if header else {})
        assert_problem(answer, 401, "invalid-token")
        assert answer.headers["www-authenticate"].startswith("Bearer")


class TestDevices:
    def test_register_list_get_count_unregister(self, api):
        token = api.signed_in()
        created = api.post("/v1/devices", {"name": "kitchen sensor"}, token)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == "/v1/devices/kitchen%20sensor"
        body = created.json
        assert len(body["device_id"]) == 40 and body["private_key"].startswith("-----BEGIN PRIVATE KEY")
        assert {"ca", "certificate", "host", "mqtt_port", "amqp_port"} <= set(body)
        listed = api.get("/v1/devices", token).json
        assert [d["name"] for d in listed["items"]] == ["kitchen sensor"] and listed["total"] == 1
        assert "private_key" not in api.get("/v1/devices", token).text
        one = api.get("/v1/devices/kitchen%20sensor", token).json
        assert one["device_id"] == body["device_id"] and one["certificate"]["serial"] == body["certificate_info"]["serial"]
        assert api.get("/v1/devices/_count", token).json == {"count": 1}
        assert api.delete("/v1/devices/kitchen%20sensor", token).status_code == 204
        assert api.get("/v1/devices", token).json["items"] == []
        assert_problem(api.get("/v1/devices/kitchen%20sensor", token), 404, "device-not-found")
        assert_problem(api.delete("/v1/devices/kitchen%20sensor", token), 404, "device-not-found")

    def test_paging(self, api):
        token = api.signed_in()
        for i in range(5):
            assert api.post("/v1/devices", {"name": f"d{i}"}, token).status_code == 201
        page = api.get("/v1/devices", token, params={"limit": "2", "offset": "2"}).json
        assert [d["name"] for d in page["items"]] == ["d2", "d3"]
        assert page["total"] == 5 and page["next"] == "/v1/devices?limit=2&offset=4"
        assert api.get("/v1/devices", token, params={"limit": "2", "offset": "4"}).json["next"] is None
        assert_problem(api.get("/v1/devices", token, params={"limit": "0"}), 400, "validation-failed")
        assert_problem(api.get("/v1/devices", token, params={"limit": "x"}), 400, "validation-failed")

    def test_registration_errors(self, api):
        token = api.signed_in()
        assert api.post("/v1/devices", {"name": "dup"}, token).status_code == 201
        assert_problem(api.post("/v1/devices", {"name": "dup"}, token), 409, "device-already-registered")
        assert_problem(api.post("/v1/devices", {"name": "../etc"}, token), 400, "validation-failed")
        assert_problem(api.post("/v1/devices", {}, token), 400, "validation-failed")
        assert_problem(api.post("/v1/devices", {"name": "x", "csr": "garbage"}, token), 400, "invalid-csr")

    def test_register_with_csr_keeps_the_key_on_the_device(self, api):
        token = api.signed_in()
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        body = api.post("/v1/devices", {"name": "own-key", "csr": csr}, token).json
        assert body["private_key"] is None
        cert = x509.load_pem_x509_certificate(body["certificate"].encode())
        assert cert.public_key().public_numbers() == key.public_key().public_numbers()

    def test_reissue_certificate(self, api):
        token = api.signed_in()
        first = api.post("/v1/devices", {"name": "rotating"}, token).json
        second = api.post("/v1/devices/rotating/certificate", None, token)
        assert second.status_code == 200
        assert second.json["device_id"] == first["device_id"]
        assert second.json["certificate_info"]["serial"] != first["certificate_info"]["serial"]
        assert api.get("/v1/devices/rotating", token).json["certificate"]["serial"] == second.json["certificate_info"]["serial"]
        assert_problem(api.post("/v1/devices/ghost/certificate", None, token), 404, "device-not-found")

    def test_another_users_device_is_invisible(self, api):
        alice, mallory = api.signed_in(), api.signed_in()
        assert api.post("/v1/devices", {"name": "private"}, alice).status_code == 201
        assert api.get("/v1/devices", mallory).json["items"] == []
        assert api.get("/v1/devices/_count", mallory).json == {"count": 0}
        for answer in (api.get("/v1/devices/private", mallory), api.delete("/v1/devices/private", mallory),
                       api.post("/v1/devices/private/certificate", None, mallory)):
            assert_problem(answer, 404, "device-not-found")
            assert "BEGIN CERTIFICATE" not in answer.text
        assert api.get("/v1/devices/private", alice).status_code == 200


class TestService:
    def test_health_ready_ca_jwks(self, api):
        assert api.get("/healthz").json == {"status": "ok"}
        ready = api.get("/readyz")
        assert ready.status_code == 200 and ready.json["status"] == "ready"
        ca = api.get("/v1/ca")
        assert ca.text.startswith("-----BEGIN CERTIFICATE-----")
        assert "PRIVATE" not in ca.text
        assert api.get("/.well-known/jwks.json").json["keys"][0]["alg"] == "EdDSA"

    def test_problem_types_are_documented(self, api):
        catalogue = api.get("/problems").json
        assert "device-not-found" in catalogue and "invalid-token" in catalogue
        assert api.get("/problems/device-not-found").json["title"] == "No such device"
        assert_problem(api.get("/problems/nope"), 404, "not-found")

    def test_unknown_routes_and_methods_are_problems(self, api):
        assert_problem(api.get("/nowhere"), 404, "not-found")
        assert_problem(api.client.simulate_put("/healthz", headers={}), 405, "method-not-allowed")

    def test_request_ids_are_echoed(self, api):
        answer = api.client.simulate_get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert answer.headers["x-request-id"] == "abc-123"
        assert len(api.client.simulate_get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]) == 32
