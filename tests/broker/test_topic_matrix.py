"""Every broker topic pattern x {own device, other device, gateway, API}: who may bind (read) and
publish (write) which routing keys on amq.topic. The expected table is written out here by hand;
both places that enforce it must agree with it: the HTTP auth backend's policy (devices, and services
when they ask it) and the services' internal-user topic regexes that RabbitMQ applies itself."""

from __future__ import annotations

import re

import pytest

from gateways.broker import policy
from gateways.broker.topology import API_SERVICE, GATEWAY_SERVICE, SERVICE_PERMISSIONS

ME, OTHER = "a" * 40, "b" * 40
IDS = policy.Identities(frozenset({GATEWAY_SERVICE, API_SERVICE}))
IDENTITIES = {"own device": ME, "other device": OTHER, "gateway": GATEWAY_SERVICE, "api": API_SERVICE}

# routing key -> (who may read it, who may write it); MQTT's `/` is `.` and `+` is `*` here.
# The gateway and the API (which sends calls itself on the short path) send requests and read answers.
MATRIX = {
    f"{ME}.get_status":         ({"own device"}, {"gateway", "api"}),
    f"{ME}.#":                  ({"own device"}, set()),
    f"{ME}.*":                  ({"own device"}, set()),
    f"server.{ME}.get_status":  ({"gateway", "api"}, {"own device"}),
    f"server.{ME}.#":           ({"gateway", "api"}, {"own device"}),  # a literal key in its own namespace
    f"{OTHER}.get_status":      ({"other device"}, {"gateway", "api"}),
    f"server.{OTHER}.get_status": ({"gateway", "api"}, {"other device"}),
    "server.#":                 ({"gateway", "api"}, set()),
    "server.*.get_status":      ({"gateway", "api"}, set()),
    "#":                        (set(), set()),
    "*.get_status":             (set(), set()),
    f"{ME}":                    ({"own device"}, set()),
    f"server.{ME}":             ({"gateway", "api"}, set()),
    # Longer or shorter than a device id: never "me", and not a device the gateway may address.
    f"{ME}x.get_status":        (set(), set()),
    f"{ME[:-1]}.get_status":    (set(), set()),
    f"{ME}\n.get_status":       (set(), set()),
}
CASES = [(key, who, permission) for key in MATRIX for who in IDENTITIES for permission in ("read", "write")]


def expected(key: str, who: str, permission: str) -> bool:
    readers, writers = MATRIX[key]
    return who in (readers if permission == "read" else writers)


@pytest.mark.parametrize("key,who,permission", CASES)
def test_the_auth_backend_policy(key, who, permission):
    username = IDENTITIES[who]
    client_id = username if who.endswith("device") else None
    allowed = policy.topic_decision(username, "/", "amq.topic", permission, key, client_id, IDS)
    assert allowed == expected(key, who, permission), (who, permission, key)


@pytest.mark.parametrize("key,who,permission", [c for c in CASES if c[1] in ("gateway", "api")])
def test_the_services_internal_topic_permissions(key, who, permission):
    """RabbitMQ applies these regexes (search semantics) to the routing key, without asking us."""
    write, read = SERVICE_PERMISSIONS[IDENTITIES[who]].topics["amq.topic"]
    allowed = re.search(read if permission == "read" else write, key) is not None
    if permission == "write":
        # Services publish literal keys: wildcards are not wildcards in a published key, so the
        # regex may refuse them where the table (about bindings) is silent.
        literal = "#" not in key and "*" not in key
        assert allowed == (expected(key, who, permission) and literal), (who, permission, key)
    else:
        # Both services bind anything under server. (the devices' answers) and nothing else.
        assert allowed == key.startswith("server."), (who, permission, key)
