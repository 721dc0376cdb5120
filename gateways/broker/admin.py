"""Operations through the management API: provision the service users, and revoke a device by
closing every connection it holds open.

The management HTTP API on loopback is used. (`rabbitmqctl close_all_user_connections` was measured at
about 1.7 s per call and, in 3.10, does not close MQTT connections at all: it reports them as "not an
active connection".)

Connections are looked up in the broker's connection tracking table (`disable_stats=true`, and
`/api/connections/username/<user>`), never in the statistics database, which the platform's node keeps only
when asked to (`IOTCLOUD_BROKER_STATISTICS`, node_config.py): tracking lists a connection the moment
the broker accepts it, costs nothing while connections idle, and asking it for one user is one small answer
instead of every connection of the node. Which certificate a connection logged in with is not in tracking
either: the gateway learns it from the connection's `connection.created` event (gateways/devices/revocation_sweeps.py).
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

from .node import AdminCredentials, PrivateBrokerNode
from .node_config import UNUSED_DEFAULT_USER
from .topology import ServicePermissions


class BrokerAdminError(RuntimeError):
    """The management API answered with an unexpected status."""


class BrokerAdmin:
    """A small client of the RabbitMQ management API (loopback, HTTP basic auth)."""

    def __init__(self, management_url: str, credentials: AdminCredentials, timeout: float = 5.0,
                 alternates: tuple[tuple[str, int], ...] = ()):
        parts = urlsplit(management_url)
        # Every node of a cluster answers for the whole cluster: when the current one refuses, the next
        # is asked (the gateway's presence listing must not stop with the node it happened to ask).
        self._addresses = [(parts.hostname or "127.0.0.1", parts.port or 15672), *alternates]
        self._current = 0
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._timeout = timeout
        self._local = threading.local()

    @classmethod
    def for_node(cls, node: PrivateBrokerNode) -> "BrokerAdmin":
        return cls(node.management_url, node.admin_credentials)

    def _request(self, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes | None = None) -> tuple[int, bytes]:
        # A kept-alive connection the server closed is retried once; a node that refuses or does not
        # answer hands over to the next one, each tried once.
        attempts = 1 + len(self._addresses)
        for attempt in range(1, attempts + 1):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = self._local.connection = http.client.HTTPConnection(
                    *self._addresses[self._current], timeout=self._timeout)
            try:
                connection.request(method, path, body=body, headers={**self._headers, **(headers or {})})
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError) as exc:
                connection.close()
                self._local.connection = None
                dropped = isinstance(exc, (http.client.HTTPException, ConnectionResetError, BrokenPipeError))
                if attempt == attempts or not (dropped or len(self._addresses) > 1):
                    raise
                if not dropped or attempt > 1:
                    self._current = (self._current + 1) % len(self._addresses)
        raise AssertionError("unreachable")

    def put(self, path: str, document: dict) -> None:
        status, body = self._request("PUT", path, headers={"Content-Type": "application/json"},
                                     body=json.dumps(document).encode())
        if status not in (200, 201, 204):
            raise BrokerAdminError(f"PUT {path}: {status} {body[:200]!r}")

    def delete(self, path: str) -> None:
        status, body = self._request("DELETE", path)
        if status not in (200, 204, 404):
            raise BrokerAdminError(f"DELETE {path}: {status} {body[:200]!r}")

    def provision_services(self, services: dict[str, ServicePermissions],
                           passwords: Mapping[str, str] | None = None) -> None:
        """Creates (or updates) the platform services as internal users with exactly the permissions each
        needs (topology.SERVICE_PERMISSIONS). They log in with their certificates over TLS; a service
        given a password here may also log in with it (on the node's loopback listener). Without one
        the user has no password at all, and a password it had is removed."""
        passwords = passwords or {}
        for name, permissions in services.items():
            # The broker salts and hashes the password itself; it is never stored or logged in clear.
            login = {"password": passwords[name]} if name in passwords else {"password_hash": ""}
            self.put(f"/api/users/{name}", {**login, "tags": ""})
            self.put(f"/api/permissions/%2F/{name}", {"configure": permissions.configure,
                                                      "write": permissions.write, "read": permissions.read})
            for exchange, (write, read) in permissions.topics.items():
                self.put(f"/api/topic-permissions/%2F/{name}", {"exchange": exchange, "write": write, "read": read})
        # The bootstrap user is never used; with the internal backend on it must not exist at all.
        self.delete(f"/api/users/{UNUSED_DEFAULT_USER}")

    def _get_json(self, path: str):
        status, body = self._request("GET", path)
        if status != 200:
            raise BrokerAdminError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)

    def connections_of(self, username: str) -> list[str]:
        """Names of the live connections (MQTT and AMQP) authenticated as `username`."""
        return [c["name"] for c in self._get_json(f"/api/connections/username/{quote(username, safe='')}")
                if c.get("name")]

    def connections_by_user(self) -> dict[str, list[str]]:
        """Every live connection, grouped by user, from connection tracking (complete, no lag)."""
        users: dict[str, list[str]] = {}
        for connection in self._get_json("/api/connections?disable_stats=true&columns=name,user"):
            if connection.get("user") and connection.get("name"):
                users.setdefault(connection["user"], []).append(connection["name"])
        return users

    def close_connection(self, name: str, reason: str = "closed by iotcloud") -> bool:
        status, body = self._request("DELETE", f"/api/connections/{quote(name, safe='')}?disable_stats=true",
                                     headers={"X-Reason": reason})
        if status in (200, 204):
            return True
        if status == 404:  # already gone
            return False
        raise BrokerAdminError(f"DELETE connection {name!r}: {status} {body[:200]!r}")

    def close_device_connections(self, device_id: str, reason: str = "device revoked", *,
                                 only: Callable[[str], bool] | None = None) -> int:
        """Closes every live connection of `device_id` (those whose name `only` accepts, when given: after a
        reissue the gateway spares the new certificate's); returns how many were closed. Call it after the
        broker refuses the revoked credential, so that a closed device cannot log in again with it."""
        return sum(self.close_connection(name, reason) for name in self.connections_of(device_id)
                   if only is None or only(name))

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
