"""/v1/admin: what administrators (the `admin` role) see and change: every account with its roles,
every device, and role grants. Everyone else is refused with 403 problem+json (`role-required`).

Lists come from the read models; grants and revocations go through `commands.accounts` as events with
the administrator as actor, and hold from the next request (roles are looked up per request)."""

from __future__ import annotations

import falcon

from commands.context import acting_as
from commands.domain.accounts import ROLES
from commands.errors import DomainError, ValidationFailed
from gateways.http.access import require_role
from gateways.http.bodies import number_param
from gateways.http.openapi_schemas import NULLABLE_S, S, TIME, obj, ref, string
from queries.admin import MAX_PAGE, AdminQueries

ADMIN = "admin"
MAX_CURSOR = 128


class OwnAdminRole(DomainError):
    problem, status, title = "own-admin-role", 409, "An administrator cannot revoke their own admin role"


def _page_params(req) -> tuple[str | None, int]:
    after = req.get_param("after")
    if after is not None and len(after) > MAX_CURSOR:
        raise ValidationFailed(f"'after' is longer than {MAX_CURSOR} characters", field="after")
    return after or None, number_param(req, "limit", 50, 1, MAX_PAGE)


class Listing:
    """GET /v1/admin/users and /v1/admin/devices: one page of a read-model list."""

    def __init__(self, page):
        self._page = page

    def on_get(self, req, resp):
        require_role(req.context, ADMIN)
        resp.media = self._page(*_page_params(req))


class UserRole:
    """PUT (grant) and DELETE (revoke) /v1/admin/users/{username}/roles/{role}"""

    def __init__(self, accounts, rw):
        self._accounts, self._rw = accounts, rw

    def on_put(self, req, resp, username: str, role: str):
        self._change(req, resp, username, role, self._accounts.grant_role, held=True)

    def on_delete(self, req, resp, username: str, role: str):
        principal = req.context.principal
        if role == ADMIN and username.lower() == principal.username.lower():
            require_role(req.context, ADMIN)
            raise OwnAdminRole("another administrator has to revoke your admin role")
        self._change(req, resp, username, role, self._accounts.revoke_role, held=False)

    def _change(self, req, resp, username: str, role: str, change, held: bool) -> None:
        require_role(req.context, ADMIN)
        if len(username) > 64:
            raise ValidationFailed("username is longer than 64 characters", field="username")
        ctx = req.context
        with acting_as(f"user:{ctx.principal.username}", ctx.correlation_id, ctx.request_id):
            position = change(username, role)
        if position is not None:
            self._rw.users(resp, position)
        resp.media = {"username": username, "role": role, "held": held, "changed": position is not None}


def routes(platform) -> list[tuple[str, object]]:
    queries = AdminQueries(platform.db)
    return [("/v1/admin/users", Listing(queries.users)),
            ("/v1/admin/devices", Listing(queries.devices)),
            ("/v1/admin/users/{username}/roles/{role}", UserRole(platform.accounts, platform.rw))]


# -- OpenAPI -------------------------------------------------------------------------------------------

SCHEMAS = {
    "AdminUser": obj(["username", "roles"], username=S, email=S, given_name=S, family_name=S, status=S,
                     roles={"type": "array", "items": {"enum": list(ROLES)}}, signed_up_at=TIME),
    "AdminUserPage": obj(["items", "next"], items={"type": "array", "items": ref("AdminUser")}, next=NULLABLE_S),
    "AdminDevice": obj(["device_id", "owner", "name", "online"], device_id=S, owner=S, name=S,
                       online={"type": "boolean"}, last_seen={"type": ["string", "null"], "format": "date-time"},
                       registered_at=TIME),
    "AdminDevicePage": obj(["items", "next"], items={"type": "array", "items": ref("AdminDevice")},
                           next=NULLABLE_S),
    "RoleChange": obj(["username", "role", "held", "changed"], username=S, role={"enum": list(ROLES)},
                      held={"type": "boolean"}, changed={"type": "boolean"}),
}
OPERATIONS = {
    ("/v1/admin/users", "get"): ("admin", "Every account with its roles, by username (administrators)", None,
                                 {200: "AdminUserPage"}, {400, 403}),
    ("/v1/admin/devices", "get"): ("admin", "Every device: owner, name, id, online, last seen (administrators)",
                                   None, {200: "AdminDevicePage"}, {400, 403}),
    ("/v1/admin/users/{username}/roles/{role}", "put"): (
        "admin", "Grant a role; it holds from the user's next request (administrators)", None,
        {200: "RoleChange"}, {400, 403, 404}),
    ("/v1/admin/users/{username}/roles/{role}", "delete"): (
        "admin", "Revoke a role; it stops from the user's next request; not your own admin role "
                 "(administrators)", None, {200: "RoleChange"}, {400, 403, 404, 409}),
}
_PAGE = [{"name": "after", "in": "query", "schema": string(MAX_CURSOR),
          "description": "the `next` of the previous page"},
         {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}}]
PARAMETERS = {"/v1/admin/users": _PAGE, "/v1/admin/devices": _PAGE}
PATH_PARAMETERS = {"username": string(64, description="username"),
                   "role": {"type": "string", "enum": list(ROLES), "description": "role"}}
