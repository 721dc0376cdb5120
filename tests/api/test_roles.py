"""Roles: granted and revoked with `iotcloud users grant|revoke` (a separate Accounts, as the CLI
process is), recorded as UserAccount events, shown in the users read model, and enforced by the
API from the very next request (no eventual-consistency window)."""

from __future__ import annotations

import falcon
from falcon import testing

from commands.domain.accounts import UserAccount
from gateways.http import problems
from gateways.http.access import RoleLookup, owner_or_role, require_role
from gateways.http.middleware import BearerAuthentication, RequestContext
from iotcloud.cli import parser
from queries.read_models import USERS
from tests.api.conftest import assert_problem


def cli(settings, *argv) -> int:
    args = parser().parse_args(list(argv))
    return args.func(settings, args)


class AuditorsOnly:
    def on_get(self, req, resp):
        require_role(req.context, "auditor")
        resp.media = {"ok": True}


class OwnerOrAnalyst:
    def on_get(self, req, resp, owner):
        owner_or_role(req.context, owner, "analyst")
        resp.media = {"owner": owner}


def guarded_app(platform) -> testing.TestClient:
    """The real middleware and role source in front of two resources that use the policy helpers."""
    app = falcon.App(middleware=[RequestContext(), BearerAuthentication(platform.identity),
                                 RoleLookup(platform.accounts.roles)])
    problems.install(app)
    app.add_route("/audited", AuditorsOnly())
    app.add_route("/data/{owner}", OwnerOrAnalyst())
    return testing.TestClient(app)


def test_grant_and_revoke_hold_from_the_next_request(api, capsys):
    settings = api.running.settings
    token = api.signed_in("ruth")
    client = guarded_app(api.platform)
    auth = {"Authorization": f"Bearer {token}"}

    assert_problem(client.simulate_get("/audited", headers=auth), 403, "role-required")
    assert "checks" not in api.get("/readyz", token=token).json

    assert cli(settings, "users", "grant", "ruth", "auditor") == 0
    assert client.simulate_get("/audited", headers=auth).json == {"ok": True}
    assert cli(settings, "users", "grant", "ruth", "admin") == 0
    assert "checks" in api.get("/readyz", token=token).json  # admins see the readiness detail

    assert cli(settings, "users", "revoke", "ruth", "auditor") == 0
    assert_problem(client.simulate_get("/audited", headers=auth), 403, "role-required")
    assert cli(settings, "users", "revoke", "ruth", "admin") == 0
    assert "checks" not in api.get("/readyz", token=token).json
    assert "granted (enforced now" in capsys.readouterr().out


def test_roles_are_events_and_shown_in_the_users_read_model(api):
    settings = api.running.settings
    api.signed_in("sam")
    assert cli(settings, "users", "grant", "sam", "analyst") == 0
    assert cli(settings, "users", "grant", "sam", "auditor") == 0
    assert cli(settings, "users", "grant", "sam", "auditor") == 0  # already held: nothing recorded
    assert cli(settings, "users", "revoke", "sam", "analyst") == 0

    accounts = api.platform.accounts
    events = list(accounts.events.get(UserAccount.create_id("sam")))
    changes = [(type(e).__name__, e.role, e.roles) for e in events if type(e).__name__.startswith("Role")]
    assert changes == [("RoleGranted", "analyst", ["analyst"]), ("RoleGranted", "auditor", ["analyst", "auditor"]),
                       ("RoleRevoked", "analyst", ["auditor"])]
    assert all(e.actor.startswith("cli:") for e in events if type(e).__name__.startswith("Role"))
    doc = api.platform.catalogue.collection(USERS).find_one({"username_key": "sam"})
    assert doc["roles"] == ["auditor"]


def test_unknown_users_and_roles_are_refused(api, capsys):
    settings = api.running.settings
    assert cli(settings, "users", "grant", "nobody", "auditor") == 2
    assert "no user 'nobody'" in capsys.readouterr().err


def test_owner_or_role(api):
    settings = api.running.settings
    client = guarded_app(api.platform)
    alice = {"Authorization": f"Bearer {api.signed_in('alice')}"}
    bob = {"Authorization": f"Bearer {api.signed_in('bob')}"}
    assert client.simulate_get("/data/alice", headers=alice).status_code == 200
    assert_problem(client.simulate_get("/data/alice", headers=bob), 403, "role-required")
    assert cli(settings, "users", "grant", "bob", "analyst") == 0
    assert client.simulate_get("/data/alice", headers=bob).status_code == 200
    assert cli(settings, "users", "revoke", "bob", "analyst") == 0
    assert_problem(client.simulate_get("/data/alice", headers=bob), 403, "role-required")
