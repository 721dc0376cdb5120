"""The broker topology (gateways/broker/topology.py) is the one statement of exchanges, queues, keys
and service grants: the auth backend's policy and the regexes RabbitMQ applies to the service users
agree on every question, the services' own declarations and bindings fall within their grants, and a
new shared exchange is one line that the permissions follow."""

from __future__ import annotations

import re

import pytest

from commands.device_apis import DEVICE_APIS
from commands.domain.device_ids import new_device_id
from gateways.broker import policy, topology
from gateways.broker.topology import (ANSWERS_BINDING, ANSWERS_QUEUE, API_SERVICE, EVENT_EXCHANGE, GATEWAY_SERVICE,
                                      PRESENCE_KEYS, PRESENCE_QUEUE, SERVICE_PERMISSIONS, TOPIC_EXCHANGE,
                                      WAKE_QUEUE, rabbitmq_permissions, request_routing_key)

SERVICES = policy.Identities(frozenset(topology.SERVICE_ACCESS))
DEVICE = "5d0c7a3e9b1f4a6c8e2d0b7a9c1e3f5a7b9d1c3e"  # fixed: test ids must match in every xdist worker
EXCHANGES = [TOPIC_EXCHANGE, EVENT_EXCHANGE, *topology.SHARED_EXCHANGES, "amq.direct", "iotcloud.other", ""]
QUEUES = [ANSWERS_QUEUE, PRESENCE_QUEUE, WAKE_QUEUE, "iotcloud.api.host.1.ab12", "iotcloud.api.", "iotcloud.gateway.",
          "iotcloud.replies", f"mqtt-subscription-{DEVICE}qos1", "other"]
PERMISSIONS = sorted(topology.PERMISSIONS)


def by_policy(service: str, resource: str, name: str, permission: str) -> bool:
    return policy.resource_decision(service, "/", resource, name, permission, None, SERVICES)


def by_regex(service: str, name: str, permission: str) -> bool:
    return re.search(getattr(SERVICE_PERMISSIONS[service], permission), name) is not None


@pytest.mark.parametrize("service", sorted(topology.SERVICE_ACCESS))
@pytest.mark.parametrize("resource,name", [*(("exchange", e) for e in EXCHANGES), *(("queue", q) for q in QUEUES)])
@pytest.mark.parametrize("permission", PERMISSIONS)
def test_the_policy_and_the_rabbitmq_regexes_agree(service, resource, name, permission):
    assert by_policy(service, resource, name, permission) == by_regex(service, name, permission)


def topic_allowed(service: str, exchange: str, permission: str, key: str) -> bool:
    by_backend = policy.topic_decision(service, "/", exchange, permission, key, None, SERVICES)
    write, read = SERVICE_PERMISSIONS[service].topics.get(exchange, ("^$", "^$"))
    assert by_backend == (re.search(write if permission == "write" else read, key) is not None), (service, key)
    return by_backend


def test_the_gateway_may_do_what_its_broker_link_does():
    device = new_device_id()
    for api in DEVICE_APIS:
        assert topic_allowed(GATEWAY_SERVICE, TOPIC_EXCHANGE, "write", request_routing_key(device, api))
    assert topic_allowed(GATEWAY_SERVICE, TOPIC_EXCHANGE, "read", ANSWERS_BINDING)
    for key in PRESENCE_KEYS:
        assert topic_allowed(GATEWAY_SERVICE, EVENT_EXCHANGE, "read", key)
    for queue in (ANSWERS_QUEUE, PRESENCE_QUEUE, WAKE_QUEUE):
        assert all(by_policy(GATEWAY_SERVICE, "queue", queue, p) for p in PERMISSIONS)


def test_the_api_sends_requests_and_reads_answers_but_never_speaks_for_a_device():
    device = new_device_id()
    assert topic_allowed(API_SERVICE, TOPIC_EXCHANGE, "write", request_routing_key(device, "set_gpio"))
    assert topic_allowed(API_SERVICE, TOPIC_EXCHANGE, "read", ANSWERS_BINDING)
    for permission, key in [("write", f"server.{device}.get_status"), ("read", f"{device}.#"),
                            ("write", f"{device}.#")]:
        assert not topic_allowed(API_SERVICE, TOPIC_EXCHANGE, permission, key)


@pytest.mark.parametrize("service", sorted(topology.SERVICE_ACCESS))
def test_every_service_may_declare_every_shared_exchange(service):
    for exchange in topology.SHARED_EXCHANGES:
        assert by_policy(service, "exchange", exchange, "configure") and by_regex(service, exchange, "configure")


class RecordingChannel:
    def __init__(self):
        self.declared = []

    def exchange_declare(self, name, exchange_type, durable):
        self.declared.append((name, exchange_type, durable))


def test_a_new_shared_exchange_is_one_line(monkeypatch):
    monkeypatch.setattr(topology, "SHARED_EXCHANGES", dict(topology.SHARED_EXCHANGES))
    name = topology.shared_exchange("iotcloud.audit", publisher=API_SERVICE, consumer=GATEWAY_SERVICE)
    assert topology.service_may_use_exchange(API_SERVICE, name, "write")
    assert not topology.service_may_use_exchange(API_SERVICE, name, "read")
    assert topology.service_may_use_exchange(GATEWAY_SERVICE, name, "read")
    assert not topology.service_may_use_exchange(GATEWAY_SERVICE, name, "write")
    assert re.search(rabbitmq_permissions(API_SERVICE).write, name)
    assert not re.search(rabbitmq_permissions(GATEWAY_SERVICE).write, name)
    channel = RecordingChannel()
    topology.declare_shared_exchanges(channel)
    assert (name, "fanout", True) in channel.declared
