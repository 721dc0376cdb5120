"""Devices registered for password login, on the real node: TLS without a client certificate, username =
device id, PLAIN (AMQP) or CONNECT credentials (MQTT), the same per-device permissions; nobody else by password."""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest
from broker_testkit import TIMEOUT, MqttDevice, libpyiotcloud_amqp_device, next_message

from commands.broker_passwords import new_broker_password
from commands.domain.device_ids import new_device_id


@pytest.fixture
def password_device(device_directory):
    def make(registered: bool = True) -> tuple[str, str]:
        device_id = new_device_id()
        password, password_hash = new_broker_password()
        if registered:
            device_directory.register(device_id, password_hash)
        return device_id, password
    return make


def mqtt_with_password(broker_node, username: str, password: str, client_id: str | None = None,
                       cert=None) -> MqttDevice:
    client = MqttDevice(broker_node, cert, client_id or username)
    client.client.username_pw_set(username, password)
    return client.connect()


def amqp_with_password(broker_node, username: str, password: str) -> pika.BlockingConnection:
    """As libpyiotcloud's AMQP device: pika over TLS, PLAIN credentials, no client certificate."""
    context = ssl.create_default_context(cafile=str(broker_node.ca_file))
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="localhost", port=broker_node.ports.amqps, credentials=pika.PlainCredentials(username, password),
        ssl_options=pika.SSLOptions(context, server_hostname="localhost"), connection_attempts=1,
        socket_timeout=TIMEOUT))


def test_password_device_over_mqtts_has_its_own_topics_only(broker_node, password_device, gateway_connection):
    device_id, password = password_device()
    other_id, _ = password_device()
    device = mqtt_with_password(broker_node, device_id, password)
    try:
        assert device.wait_connack() is True
        assert device.subscribe(f"{device_id}/#") == [mqtt.ReasonCode(mqtt.PacketTypes.SUBACK, identifier=1)]
        gateway = gateway_connection.channel()
        gateway.basic_publish("amq.topic", f"{device_id}.get_status", b"{}")
        assert device.messages.get(timeout=TIMEOUT).topic == f"{device_id}/get_status"
        device.client.subscribe(f"{other_id}/#", qos=1)  # another device's topics: the broker closes the connection
        assert device.disconnected.wait(TIMEOUT)
    finally:
        device.close()


def test_password_device_over_amqps_as_libpyiotcloud_did(broker_node, password_device, gateway_connection):
    device_id, password = password_device()
    connection = amqp_with_password(broker_node, device_id, password)
    try:
        gateway = gateway_connection.channel()
        channel, own_queue, answers = libpyiotcloud_amqp_device(connection, gateway, device_id)
        gateway.basic_publish("amq.topic", f"{device_id}.get_status", b"{}")
        assert next_message(channel, own_queue)[0].routing_key == f"{device_id}.get_status"
        channel.basic_publish("amq.topic", f"server.{device_id}.get_status", b'{"value": "running"}')
        assert next_message(gateway, answers)[2] == b'{"value": "running"}'
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_bind(own_queue, "amq.topic", routing_key="someone-else.#")
    finally:
        if connection.is_open:
            connection.close()


def test_who_may_not_log_in_by_password(broker_node, password_device, make_device, device_directory):
    device_id, password = password_device()
    _, other_password = password_device()
    unregistered_id, unregistered_password = password_device(registered=False)
    certificate_device = make_device()
    refused = [(device_id, "wrong-" + password), (device_id, ""), (device_id, other_password),
               (unregistered_id, unregistered_password),
               (certificate_device.device_id, password), (certificate_device.device_id, ""),
               ("iotcloud-gateway", password)]
    for username, secret in refused:
        assert mqtt_with_password(broker_node, username, secret).wait_connack() is False, username
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            amqp_with_password(broker_node, username, secret)
    # Its own password under another client id: refused (the client id must be the username).
    assert mqtt_with_password(broker_node, device_id, password, client_id=new_device_id()).wait_connack() is False
    # A certificate device's certificate with a password device's credentials logs in as that password device
    # only (the password is what counts), never as the certificate's device.
    assert mqtt_with_password(broker_node, device_id, "nope", cert=certificate_device).wait_connack() is False
    device_directory.unregister(device_id)
    assert mqtt_with_password(broker_node, device_id, password).wait_connack() is False
