"""The platform's services reach their embedded node over its loopback listener (plain AMQP on 127.0.0.1,
a password per service), devices over TLS only; a wrong or borrowed password is refused there. That the
services keep exactly their rights on this listener is test_device_control.py's
`test_services_have_only_the_rights_their_job_needs`, which connects as the services do."""

from __future__ import annotations

import dataclasses
import json
import time

import pika
import pytest

from gateways.broker.topology import API_SERVICE, GATEWAY_SERVICE, NOTIFIER_SERVICE
from iotcloud.broker import embedded_node, service_address

SERVICES = (API_SERVICE, GATEWAY_SERVICE, NOTIFIER_SERVICE)


def _connections(platform, wanted) -> list[dict]:
    """The node's AMQP and MQTT connections once `wanted(connections)` holds. Asked with rabbitmqctl, which
    asks each connection itself: the node keeps no statistics database for the management API to answer
    from."""
    node = embedded_node(platform.settings)
    deadline = time.monotonic() + 30
    while True:
        connections = []
        for command in ("list_connections", "list_mqtt_connections"):
            listing = node.rabbitmqctl(command, "user", "ssl", "port", "peer_host", "--formatter", "json")
            assert listing.returncode == 0, listing.stderr
            connections += [{**c, "peer_host": _address(c["peer_host"])} for c in json.loads(listing.stdout)]
        if wanted(connections) or time.monotonic() > deadline:
            return connections
        time.sleep(0.2)


def _address(host) -> str:
    """rabbitmqctl writes an IPv4 address as its four numbers."""
    return ".".join(map(str, host)) if isinstance(host, list) else host


def test_services_use_the_loopback_listener_and_devices_tls(platform, user, simulator, tmp_path):
    name, credentials = user.device(tmp_path)
    simulator("mqtt", credentials)
    user.wait_for_connection(name, "online")
    device_id = json.loads(credentials.read_text())["device_id"]
    status, answer = user("POST", f"/v1/devices/{name}/commands", {"api": "get_status"})
    assert status == 200 and answer["status"] == "succeeded", answer  # through the API's own link
    loopback = platform.settings.broker_loopback
    assert loopback

    connections = _connections(platform, lambda found: {c["user"] for c in found} >= {*SERVICES, device_id})
    by_user = {}
    for connection in connections:
        by_user.setdefault(connection["user"], []).append(connection)
    for service in SERVICES:
        assert by_user.get(service), f"{service} has no connection: {connections}"
        for connection in by_user[service]:
            assert (connection["ssl"], connection["port"], connection["peer_host"]) == (False, loopback, "127.0.0.1")
    for connection in by_user[device_id]:
        assert connection["ssl"] is True and connection["port"] == platform.settings.mqtt_port


def test_a_wrong_or_borrowed_password_is_refused_on_the_loopback_listener(platform):
    address = service_address(platform.settings, API_SERVICE)
    assert address.ssl_context is None and address.port == platform.settings.broker_loopback
    pika.BlockingConnection(address.parameters()).close()  # its own password: in
    gateway_password = embedded_node(platform.settings).service_password(GATEWAY_SERVICE)
    for login in ((API_SERVICE, "not-its-password"), (API_SERVICE, gateway_password), (API_SERVICE, ""),
                  ("iotcloud-unused", "x"), ("guest", "guest")):
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(dataclasses.replace(address, login=login).parameters())


def test_the_services_certificates_still_log_in_over_tls(platform):
    tls = dataclasses.replace(platform.settings, broker_loopback_port=0)
    address = service_address(tls, GATEWAY_SERVICE)
    assert address.ssl_context is not None and address.port == platform.settings.amqp_port
    connection = pika.BlockingConnection(address.parameters())
    assert connection.is_open
    connection.close()
