"""One device-id rule (commands.domain.device_ids), and every place that meets a device id uses it:
the broker's auth policy and the gateway service's permission regex, the device gateway, the signer,
the REST API's OpenAPI document and the simulators. An id with a trailing newline (which `$` lets
through) and the looser shapes an older broker policy accepted are refused by each of them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from commands.domain.device_ids import DEVICE_ID_PATTERN, DEVICE_ID_SHAPE, is_device_id, new_device_id
from commands.pki import CertificateAuthority
from gateways.broker import policy
from gateways.broker.topology import API_SERVICE, GATEWAY_SERVICE, SERVICE_PERMISSIONS, parse_answer_routing_key
from gateways.devices import broker_link, runtime
from gateways.http.openapi import SCHEMAS
from gateways.signer.server import SignerServer
from simulators.credentials import Credentials, CredentialsError

# One issued id, fixed: parametrised test ids must be the same in every xdist worker (make test).
GOOD = "5d0c7a3e9b1f4a6c8e2d0b7a9c1e3f5a7b9d1c3e"
BAD = [GOOD + "\n", GOOD.upper(), GOOD[:-1], GOOD + "0", "g" * 40, "iotcloud-gateway", "PH80XXRR112219EF", "dev-A",
       "", " " + GOOD]
SERVICES = policy.Identities(frozenset({GATEWAY_SERVICE, API_SERVICE}))
REPO = Path(__file__).resolve().parents[2]


def broker_login(device_id: str) -> bool:
    return (policy.user_decision(device_id, None, SERVICES, registered=True) == policy.ALLOW
            and policy.vhost_decision(device_id, "/", device_id, SERVICES, registered=True))


def gateway_may_publish_to(device_id: str) -> bool:
    """Both places that decide it: the auth backend's policy and the regex RabbitMQ applies itself."""
    key = f"{device_id}.get_status"
    by_policy = policy.topic_decision(GATEWAY_SERVICE, "/", "amq.topic", "write", key, None, SERVICES)
    by_regex = re.search(SERVICE_PERMISSIONS[GATEWAY_SERVICE].topics["amq.topic"][0], key) is not None
    assert by_policy == by_regex, key
    return by_policy


def gateway_hears_answers_of(device_id: str) -> bool:
    return parse_answer_routing_key(f"server.{device_id}.get_status") is not None


def signer_signs_for(device_id: str, ca) -> bool:
    answer = SignerServer(ca, "/nonexistent/signer.sock", 30).answer(
        {"op": "sign", "device_id": device_id, "csr": "not a CSR", "validity_days": 1})
    assert answer["ok"] is False
    return answer["error"] != "bad-request"  # a device id gets as far as the CSR check


def openapi_accepts(device_id: str) -> bool:
    # JSON Schema patterns are ECMA-262: `$` (no multiline flag) is the end of the input only.
    pattern = SCHEMAS["Device"]["properties"]["device_id"]["pattern"]
    assert pattern.endswith("$") and "\\Z" not in pattern
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), device_id) is not None


def simulator_calls_it_registered(device_id: str) -> bool:
    try:
        return Credentials(device_id=device_id, tls=False).looks_like_registered_id
    except CredentialsError:  # not even an id a plain test broker would take
        return False


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("pki"))


CONSUMERS = [is_device_id, broker_login, gateway_may_publish_to, gateway_hears_answers_of, openapi_accepts,
             simulator_calls_it_registered]


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)
def test_every_consumer_accepts_a_platform_device_id(consumer):
    assert consumer(GOOD)


@pytest.mark.parametrize("device_id", BAD, ids=repr)
@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)
def test_every_consumer_refuses_anything_else(consumer, device_id):
    assert not consumer(device_id)


@pytest.mark.parametrize("device_id", [GOOD, *BAD], ids=repr)
def test_the_signer_signs_only_for_device_ids(ca, device_id):
    assert signer_signs_for(device_id, ca) == (device_id == GOOD)


def test_the_gateway_runtime_and_broker_link_hold_the_one_compiled_rule():
    """They use the pattern object with `.match`; anchored at both ends (\\Z), it refuses a trailing newline."""
    assert runtime.DEVICE_ID_PATTERN is DEVICE_ID_PATTERN and broker_link.DEVICE_ID is DEVICE_ID_PATTERN
    assert DEVICE_ID_PATTERN.match(GOOD) and not DEVICE_ID_PATTERN.match(GOOD + "\n")


def test_no_module_writes_the_rule_again():
    """A second copy of the shape (any `{40}` in a regex) outside commands/domain/device_ids.py."""
    copies = []
    for package in ("commands", "queries", "projections", "gateways", "iotcloud", "simulators"):
        for path in (REPO / package).rglob("*.py"):
            if path == REPO / "commands" / "domain" / "device_ids.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "{40}" in node.value:
                    copies.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert copies == [], f"device-id rule written again at {copies}; import commands.domain.device_ids"
    assert DEVICE_ID_SHAPE == "[0-9a-f]{40}"


def test_issued_ids_follow_the_rule_the_fixed_one_stands_for():
    assert all(is_device_id(new_device_id()) for _ in range(100))
    assert len(GOOD) == len(new_device_id()) and is_device_id(GOOD)
