"""IOTCLOUD_IDENTITY=cognito: both REST flavours over a user pool on moto's server (boto3 over HTTP).

How moto delivers codes: it sends no email. Sign-up codes are neither generated nor checked (any code
confirms); a forgot-password code is generated ("moto-confirmation-code:NNNNNN", also answered in the
`x-moto-forgot-password-confirmation-code` header) and kept on the user, where `/moto-api/data.json`
shows it; moto checks only codes with that prefix. These tests read the issued code from data.json to
see that the request reached the pool, and confirm through the real API.
"""

from __future__ import annotations

import json
import time
import uuid

import boto3
import jwt
import pytest

from tests.api.conftest import Api, assert_problem
from tests.conftest import RunningPlatform
from tests.ports import free_port

PASSWORD = "Correct-horse1"   # the pool's default policy wants upper, lower, digit and symbol
NEW_PASSWORD = "Battery-staple2"


@pytest.fixture
def pool(moto_server, monkeypatch):
    for name, value in moto_server.environment().items():
        monkeypatch.setenv(name, value)
    cognito = boto3.client("cognito-idp")
    pool_id = cognito.create_user_pool(PoolName=f"iotcloud-{uuid.uuid4().hex[:6]}",
                                       AutoVerifiedAttributes=["email"])["UserPool"]["Id"]

    def app_client():
        return cognito.create_user_pool_client(
            UserPoolId=pool_id, ClientName="iotcloud",
            ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])["UserPoolClient"]["ClientId"]
    return {"cognito": cognito, "pool_id": pool_id, "client_id": app_client(), "other_client_id": app_client(),
            "moto": moto_server}


@pytest.fixture
def cognito_api(make_settings, pool):
    running = RunningPlatform(make_settings("sqlite", identity="cognito", cognito_client_id=pool["client_id"],
                                            cognito_userpool_id=pool["pool_id"], cognito_userpool_region="us-east-1"))
    yield Api(running)
    running.close()


def moto_user(pool, username: str) -> dict:
    users = pool["moto"].data()["cognitoidp"]["CognitoIdpUser"]
    return next(u for u in users if u["username"] == username and u["user_pool_id"] == pool["pool_id"])


def v2(api, method: str, path: str, body) -> tuple[int, dict]:
    answer = api.client.simulate_request(method, path, body=json.dumps(body),
                                         headers={"Content-Type": "application/json"})
    return answer.status_code, answer.json


def modern_user(api, pool) -> tuple[str, dict]:
    username = f"cg{uuid.uuid4().hex[:8]}"
    answer = api.post("/v1/auth/signup", {"username": username, "password": PASSWORD, "email": f"{username}@example.com",
                                          "given_name": "Ada", "family_name": "Lovelace"})
    assert answer.status_code == 201 and answer.json["status"] == "UNCONFIRMED", answer.text
    assert moto_user(pool, username)["status"] == "UNCONFIRMED"
    assert_problem(api.post("/v1/auth/login", {"username": username, "password": PASSWORD}), 403,
                   "account-not-confirmed")
    assert api.post("/v1/auth/confirm", {"username": username, "code": "123456"}).status_code == 200
    assert moto_user(pool, username)["status"] == "CONFIRMED"
    answer = api.post("/v1/auth/login", {"username": username, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    assert set(answer.json) == {"access_token", "refresh_token", "id_token", "token_type", "expires_in"}
    return username, answer.json


def test_modern_sign_up_login_refresh_logout(cognito_api, pool):
    api = cognito_api
    username, tokens = modern_user(api, pool)
    me = api.get("/v1/me", token=tokens["access_token"])
    assert me.status_code == 200 and me.json["username"] == username
    assert (me.json["email"], me.json["given_name"], me.json["family_name"]) == (
        f"{username}@example.com", "Ada", "Lovelace")
    # Devices belong to the pool's immutable `sub`, not to the (reusable) username.
    assert api.post("/v1/devices", {"name": "kitchen"}, token=tokens["access_token"]).status_code == 201
    sub = moto_user(pool, username)["id"]
    assert api.platform.devices.get_device(sub, "kitchen")["name"] == "kitchen"
    assert [d["name"] for d in api.get("/v1/devices", token=tokens["access_token"]).json["items"]] == ["kitchen"]

    refreshed = api.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json["access_token"] != tokens["access_token"]
    assert api.get("/v1/me", token=refreshed.json["access_token"]).status_code == 200
    assert_problem(api.post("/v1/auth/refresh", {"refresh_token": "not-a-refresh-token"}), 401, "invalid-token")

    assert api.post("/v1/auth/logout", token=refreshed.json["access_token"]).status_code == 204
    # Global sign-out: every token of the user is refused, and the session cannot be refreshed.
    for access in (tokens["access_token"], refreshed.json["access_token"]):
        assert_problem(api.get("/v1/me", token=access), 401, "invalid-token")
    assert_problem(api.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}), 401, "invalid-token")
    # A new login works at once (even within the second of the sign-out).
    again = api.post("/v1/auth/login", {"username": username, "password": PASSWORD})
    assert api.get("/v1/me", token=again.json["access_token"]).status_code == 200



def test_sign_out_everywhere_ends_both_sessions(cognito_api, pool):
    api = cognito_api
    username, first = modern_user(api, pool)
    second = api.post("/v1/auth/login", {"username": username, "password": PASSWORD}).json
    for session in (first, second):
        assert api.get("/v1/me", token=session["access_token"]).status_code == 200
    assert api.post("/v1/auth/logout-everywhere", token=first["access_token"]).status_code == 204
    for session in (first, second):
        assert_problem(api.get("/v1/me", token=session["access_token"]), 401, "invalid-token")
        assert_problem(api.post("/v1/auth/refresh", {"refresh_token": session["refresh_token"]}), 401,
                       "invalid-token")

def test_modern_forgot_and_reset_password(cognito_api, pool):
    api = cognito_api
    username, _ = modern_user(api, pool)
    answer = api.post("/v1/auth/forgot-password", {"username": username})
    assert answer.status_code == 202 and answer.json["sent"] is True
    assert api.post("/v1/auth/forgot-password", {"username": "nobody-here"}).json == answer.json  # same answer
    assert api.platform.identity.settle()
    assert moto_user(pool, username)["confirmation_code"].startswith("moto-confirmation-code:")
    reset = api.post("/v1/auth/reset-password", {"username": username, "code": "123456", "password": NEW_PASSWORD})
    assert reset.status_code == 200, reset.text
    assert_problem(api.post("/v1/auth/login", {"username": username, "password": PASSWORD}), 401,
                   "invalid-credentials")
    assert api.post("/v1/auth/login", {"username": username, "password": NEW_PASSWORD}).status_code == 200
    # By email too (the pool's user with that address).
    assert api.post("/v1/auth/forgot-password", {"email": f"{username}@example.com"}).status_code == 202
    assert api.platform.identity.settle()
    assert moto_user(pool, username)["confirmation_code"].startswith("moto-confirmation-code:")


def test_modern_refusals_are_the_local_problems(cognito_api, pool):
    api = cognito_api
    username, _ = modern_user(api, pool)
    body = {"username": username, "password": PASSWORD, "email": "other@example.com", "given_name": "M",
            "family_name": "X"}
    assert api.post("/v1/auth/signup", body).status_code == 201  # taken: the same answer as a new sign-up
    assert api.platform.identity.settle()  # ...and the owner of the username hears about it, by email
    notices = api.outbox.messages(limit=5, recipient=f"{username}@example.com")
    assert [m["subject"] for m in notices] == ["Someone tried to sign up with your username"]
    weak = {**body, "username": f"w{uuid.uuid4().hex[:8]}", "password": "alllowercase"}
    assert_problem(api.post("/v1/auth/signup", weak), 400, "validation-failed")      # the pool's policy
    assert_problem(api.post("/v1/auth/signup", {**weak, "password": "short"}), 400, "validation-failed")
    assert_problem(api.post("/v1/auth/login", {"username": username, "password": "Wrong-horse1"}), 401,
                   "invalid-credentials")
    assert_problem(api.post("/v1/auth/login", {"username": "nobody-here", "password": PASSWORD}), 401,
                   "invalid-credentials")
    assert_problem(api.post("/v1/auth/confirm", {"username": "nobody-here", "code": "123456"}), 400, "invalid-code")
    assert api.post("/v1/auth/resend-code", {"username": username}).status_code == 202


def test_v2_flow(cognito_api, pool):
    api = cognito_api
    username = f"v2{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    status, body = v2(api, "POST", "/user/signup", {"username": username, "password": PASSWORD, "email": email,
                                                    "givenname": "Ada", "familyname": "Lovelace"})
    assert (status, body["status"]) == (200, "OK")
    assert v2(api, "POST", "/user/resend_confirmation_code", {"username": username})[0] == 200
    assert v2(api, "POST", "/user/confirm_signup", {"username": username, "confirmationcode": "123456"})[0] == 200
    status, body = v2(api, "POST", "/user/login", {"username": username, "password": PASSWORD})
    assert status == 200 and set(body["token"]) == {"access", "refresh", "id"}
    token = body["token"]
    status, body = v2(api, "POST", "/user", {"username": username, "token": token})
    assert status == 200 and body["info"] == {"email": email, "given_name": "Ada", "family_name": "Lovelace"}
    status, body = v2(api, "POST", "/devices/device", {"username": username, "token": token, "devicename": "dev1"})
    assert status == 200 and body["device"]["devicename"] == "dev1"
    assert [d["devicename"] for d in v2(api, "POST", "/devices", {"username": username, "token": token})[1]["devices"]] \
        == ["dev1"]
    # Another user's token does not pass for this username.
    assert v2(api, "POST", "/devices", {"username": "someone-else", "token": token})[0] == 401
    # An expired access token is refreshed silently through the pool, as the seed did (`new_token`).
    expired = int(time.time()) - 3600
    stale = {**token, "access": forged(pool, iat=expired - 600, exp=expired, username=username,
                                       sub=moto_user(pool, username)["id"])}
    status, body = v2(api, "POST", "/devices", {"username": username, "token": stale})
    assert status == 200 and set(body["new_token"]) == {"access", "refresh", "id"}
    assert v2(api, "POST", "/devices", {"username": username, "token": body["new_token"]})[0] == 200
    assert v2(api, "POST", "/user/logout", {"username": username, "token": token})[0] == 200
    status, body = v2(api, "POST", "/devices", {"username": username, "token": token})
    assert (status, body["status"]) == (401, "NG")

    status, body = v2(api, "POST", "/user/forgot_password", {"email": email})
    assert status == 200 and body["username"] == email
    assert api.platform.identity.settle()
    assert moto_user(pool, username)["confirmation_code"].startswith("moto-confirmation-code:")
    assert v2(api, "POST", "/user/confirm_forgot_password", {"username": email, "confirmationcode": "123456",
                                                              "password": NEW_PASSWORD})[0] == 200
    assert v2(api, "POST", "/user/login", {"username": username, "password": PASSWORD})[0] == 401
    assert v2(api, "POST", "/user/login", {"username": username, "password": NEW_PASSWORD})[0] == 200


def forged(pool, key: jwt.PyJWK | None = None, **claims) -> str:
    """A token with the pool's claim layout, signed with moto's own pool key unless `key` is given."""
    if key is None:
        from moto.utilities.utils import load_resource
        key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"))
    now = int(time.time())
    payload = {"iss": f"https://cognito-idp.us-east-1.amazonaws.com/{pool['pool_id']}", "sub": str(uuid.uuid4()),
               "client_id": pool["client_id"], "token_use": "access", "iat": now, "exp": now + 600,
               "jti": str(uuid.uuid4()), "username": "mallory", **claims}
    return jwt.encode(payload, key.key, algorithm="RS256", headers={"kid": "dummy"})


def test_tokens_are_verified_against_the_pools_keys(cognito_api, pool):
    api = cognito_api
    username, tokens = modern_user(api, pool)
    assert api.get("/.well-known/jwks.json").json["keys"][0]["kid"] == "dummy"  # the pool's, served on
    from cryptography.hazmat.primitives.asymmetric import rsa
    stranger = jwt.PyJWK.from_dict(json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(
        rsa.generate_private_key(public_exponent=65537, key_size=2048))))
    expired = int(time.time()) - 3600
    for token in (forged(pool, stranger),                                  # not the pool's signature
                  forged(pool, iss="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other"),
                  forged(pool, client_id=pool["other_client_id"]),         # another app client
                  forged(pool, token_use="id"),
                  tokens["id_token"],                                      # a real ID token is no access token
                  forged(pool, iat=expired - 600, exp=expired),            # expired
                  forged(pool)):                                           # well-formed, never issued by Cognito
        assert api.get("/v1/me", token=token).status_code == 401
    assert_problem(api.get("/v1/me", token=forged(pool, iat=expired - 600, exp=expired)), 401, "token-expired")
    # A real token of another app client of the same pool.
    other = pool["cognito"].initiate_auth(ClientId=pool["other_client_id"], AuthFlow="USER_PASSWORD_AUTH",
                                          AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD})
    assert_problem(api.get("/v1/me", token=other["AuthenticationResult"]["AccessToken"]), 401, "invalid-token")


def test_unreachable_pool_is_a_503_problem(make_settings, pool, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    running = RunningPlatform(make_settings("sqlite", identity="cognito", cognito_client_id=pool["client_id"],
                                            cognito_userpool_id=pool["pool_id"], cognito_userpool_region="us-east-1"))
    try:
        api = Api(running)
        assert_problem(api.post("/v1/auth/login", {"username": "alice", "password": PASSWORD}), 503,
                       "identity-provider-unavailable")
        status, body = v2(api, "POST", "/user/login", {"username": "alice", "password": PASSWORD})
        assert (status, body["status"]) == (503, "NG")
    finally:
        running.close()
