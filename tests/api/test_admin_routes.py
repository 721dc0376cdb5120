"""/v1/admin (administrators only) and /v1/auth/logout-everywhere, over the real platform."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_problem, cli

ROUTES = (("GET", "/v1/admin/users"), ("GET", "/v1/admin/devices"),
          ("PUT", "/v1/admin/users/bob/roles/analyst"), ("DELETE", "/v1/admin/users/bob/roles/analyst"))


@pytest.fixture
def people(api):
    tokens = {name: api.signed_in(name) for name in ("alice", "bob", "root")}
    assert cli(api.running.settings, "users", "grant", "root", "admin") == 0
    assert api.post("/v1/devices", {"name": "kitchen"}, token=tokens["alice"]).status_code == 201
    return tokens


def call(api, method, path, token):
    return api.client.simulate_request(method, path, headers={"Authorization": f"Bearer {token}"})


def test_everyone_but_an_administrator_is_refused(api, people):
    for method, path in ROUTES:
        for who in ("alice", "bob"):
            assert_problem(call(api, method, path, people[who]), 403, "role-required")
        assert_problem(api.client.simulate_request(method, path), 401, "invalid-token")


def test_an_administrator_lists_everyones_accounts_and_devices(api, people):
    users = call(api, "GET", "/v1/admin/users", people["root"])
    assert users.status_code == 200, users.text
    by_name = {user["username"]: user for user in users.json["items"]}
    assert {"alice", "bob", "root"} <= set(by_name) and by_name["root"]["roles"] == ["admin"]
    assert by_name["alice"]["email"] == "alice@example.com" and "password_hash" not in by_name["alice"]
    devices = call(api, "GET", "/v1/admin/devices", people["root"])
    assert devices.status_code == 200, devices.text
    kitchen = next(d for d in devices.json["items"] if d["name"] == "kitchen")
    assert kitchen["owner"] == "alice" and kitchen["online"] is False and len(kitchen["device_id"]) == 40


def test_users_are_paged_by_a_cursor(api, people):
    first = call(api, "GET", "/v1/admin/users?limit=2", people["root"]).json
    assert [u["username"] for u in first["items"]] == ["alice", "bob"] and first["next"] == "bob"
    rest = call(api, "GET", f"/v1/admin/users?limit=2&after={first['next']}", people["root"]).json
    assert [u["username"] for u in rest["items"]] == ["root"] and rest["next"] is None
    assert_problem(call(api, "GET", "/v1/admin/users?limit=0", people["root"]), 400, "validation-failed")


def test_a_grant_holds_from_the_grantees_next_request_and_is_recorded_with_the_admin_as_actor(api, people):
    assert_problem(api.get("/v1/audit/verify", token=people["bob"]), 403, "role-required")
    granted = call(api, "PUT", "/v1/admin/users/bob/roles/auditor", people["root"])
    assert granted.status_code == 200, granted.text
    assert granted.json == {"username": "bob", "role": "auditor", "held": True, "changed": True}
    assert api.get("/v1/audit/verify", token=people["bob"]).status_code == 200
    again = call(api, "PUT", "/v1/admin/users/bob/roles/auditor", people["root"])
    assert again.json["changed"] is False
    users = {u["username"]: u for u in call(api, "GET", "/v1/admin/users", people["root"]).json["items"]}
    assert users["bob"]["roles"] == ["auditor"]
    accounts = api.platform.accounts
    grants = [accounts.mapper.to_domain_event(n) for n in accounts.recorder.select_notifications(1, 10_000)
              if n.topic.endswith("RoleGranted")]
    assert [(g.role, g.actor) for g in grants if g.role == "auditor"] == [("auditor", "user:root")]
    revoked = call(api, "DELETE", "/v1/admin/users/bob/roles/auditor", people["root"])
    assert revoked.status_code == 200 and revoked.json["changed"] is True
    assert_problem(api.get("/v1/audit/verify", token=people["bob"]), 403, "role-required")
    assert_problem(call(api, "PUT", "/v1/admin/users/nobody/roles/auditor", people["root"]), 404, "user-not-found")
    assert_problem(call(api, "PUT", "/v1/admin/users/bob/roles/king", people["root"]), 400, "unknown-role")


def test_an_administrator_cannot_revoke_their_own_admin_role(api, people):
    assert_problem(call(api, "DELETE", "/v1/admin/users/root/roles/admin", people["root"]), 409, "own-admin-role")
    assert_problem(call(api, "DELETE", "/v1/admin/users/ROOT/roles/admin", people["root"]), 409, "own-admin-role")
    assert call(api, "GET", "/v1/admin/users", people["root"]).status_code == 200
    # another administrator may
    assert call(api, "PUT", "/v1/admin/users/alice/roles/admin", people["root"]).status_code == 200
    assert call(api, "DELETE", "/v1/admin/users/root/roles/admin", people["alice"]).status_code == 200
    assert_problem(call(api, "GET", "/v1/admin/users", people["root"]), 403, "role-required")


def test_sign_out_everywhere_ends_every_session(api, people):
    sessions = [api.post("/v1/auth/login", {"username": "bob", "password": "correct horse"}).json for _ in range(2)]
    for session in sessions:
        assert api.get("/v1/me", token=session["access_token"]).status_code == 200
    assert api.post("/v1/auth/logout-everywhere", token=sessions[0]["access_token"]).status_code == 204
    for session in sessions:
        assert_problem(api.get("/v1/me", token=session["access_token"]), 401, "invalid-token")
        assert_problem(api.post("/v1/auth/refresh", {"refresh_token": session["refresh_token"]}), 401,
                       "invalid-token")
    assert api.get("/v1/me", token=people["alice"]).status_code == 200  # someone else's sessions live on
    fresh = api.post("/v1/auth/login", {"username": "bob", "password": "correct horse"})
    assert fresh.status_code == 200 and api.get("/v1/me", token=fresh.json["access_token"]).status_code == 200
