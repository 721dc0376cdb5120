"""The one access policy of the HTTP resources: who may see what beyond their own devices.

Roles are looked up per request from the event store (`Accounts.roles`: the cached account is
fast-forwarded to its last event), never from the access token or a read model, so a grant or a
revoke that `iotcloud users grant|revoke` has recorded holds for the very next request.
A request looks its caller's roles up at most once, and only if a resource asks.
"""

from __future__ import annotations

from typing import Callable

from commands.errors import RoleRequired

RolesOf = Callable[[str], frozenset]


class RoleLookup:
    """Middleware: gives each request the means to look its caller's roles up (lazily)."""

    def __init__(self, roles_of: RolesOf):
        self._roles_of = roles_of

    def process_request(self, req, resp) -> None:
        req.context.roles_of = self._roles_of


def roles(context) -> frozenset:
    """The caller's roles (empty without a principal); looked up once per request."""
    cached = getattr(context, "roles", None)
    if cached is None:
        principal = getattr(context, "principal", None)
        roles_of = getattr(context, "roles_of", None)
        cached = frozenset(roles_of(principal.username)) if principal and roles_of else frozenset()
        context.roles = cached
    return cached


def has_role(context, role: str) -> bool:
    return role in roles(context)


def require_role(context, role: str) -> None:
    """403 problem+json (`/problems/role-required`) unless the caller holds `role`."""
    if not has_role(context, role):
        raise RoleRequired(f"this needs the '{role}' role (granted with: iotcloud users grant <user> {role})",
                           role=role)


def owner_or_role(context, owner: str | None, role: str) -> None:
    """The caller owns the data (`owner` is their owner key: the username, or Cognito's sub) or holds `role`; otherwise 403."""
    principal = getattr(context, "principal", None)
    if principal is not None and owner is not None and owner.lower() == principal.owner.lower():
        return
    require_role(context, role)


def owner_scope(context, role: str) -> str | None:
    """The owner a query must be restricted to: None (everyone's data) for a holder of `role`,
    else the caller's own owner key."""
    return None if has_role(context, role) else context.principal.owner
