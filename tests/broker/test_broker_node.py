"""The private node end to end: real broker, real TLS, real certificates, real auth backend."""

from __future__ import annotations

import json
import socket
import ssl
import time

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest

from broker_testkit import TIMEOUT, DeviceCert, amqp_parameters, libpyiotcloud_amqp_device, next_message

pytestmark = pytest.mark.broker


def _reply_queue(gateway_channel, device_id: str) -> str:
    name = f"iotcloud.gateway.test-replies-{device_id}"
    gateway_channel.queue_declare(name, exclusive=True)
    gateway_channel.queue_bind(name, "amq.topic", routing_key=f"server.{device_id}.#")
    return name


class TestRegisteredDeviceOverMqtt:
    def test_connects_and_exchanges_messages_on_its_own_topics(self, make_device, mqtt_device, gateway_connection):
        device = make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        assert not client.subscribe(f"{device.device_id}/#")[0].is_failure
        channel = gateway_connection.channel()
        replies = _reply_queue(channel, device.device_id)

        channel.basic_publish("amq.topic", f"{device.device_id}.get_status", b"{}")
        request = client.messages.get(timeout=TIMEOUT)
        assert request.topic == f"{device.device_id}/get_status"

        client.client.publish(f"server/{device.device_id}/get_status", json.dumps({"value": "running"}), qos=1)
        method, _, body = next_message(channel, replies)
        assert method.routing_key == f"server.{device.device_id}.get_status"
        assert json.loads(body) == {"value": "running"}

    @pytest.mark.parametrize("topic", ["{other}/#", "#", "+/get_status", "server/{me}/#"])
    def test_subscribing_outside_its_namespace_closes_the_connection(self, make_device, mqtt_device, topic):
        device, other = make_device(), make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        client.client.subscribe(topic.format(other=other.device_id, me=device.device_id), qos=1)
        assert client.disconnected.wait(TIMEOUT)
        assert client.subacks.empty()

    @pytest.mark.parametrize("topic", ["server/{other}/get_status", "{other}/set_gpio", "{me}/x"])
    def test_publishing_outside_its_namespace_closes_the_connection(self, make_device, mqtt_device, topic):
        device, other = make_device(), make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        client.client.publish(topic.format(other=other.device_id, me=device.device_id), b"{}", qos=1)
        assert client.disconnected.wait(TIMEOUT)
        assert client.published.empty()


class TestClientIdTakeover:
    def test_a_certificate_cannot_use_another_devices_client_id(self, make_device, mqtt_device, gateway_connection):
        victim, attacker = make_device(), make_device()
        legitimate = mqtt_device(victim)
        assert legitimate.wait_connack()
        assert not legitimate.subscribe(f"{victim.device_id}/#")[0].is_failure

        impostor = mqtt_device(attacker, client_id=victim.device_id)
        assert impostor.wait_connack() is False
        assert impostor.connack is None or impostor.connack.is_failure

        # The legitimate holder is still connected and still served.
        channel = gateway_connection.channel()
        channel.basic_publish("amq.topic", f"{victim.device_id}.get_status", b"{}")
        assert legitimate.messages.get(timeout=TIMEOUT).topic == f"{victim.device_id}/get_status"
        assert not legitimate.disconnected.is_set()

    def test_a_certificate_cannot_connect_with_an_empty_or_foreign_client_id(self, make_device, mqtt_device):
        device = make_device()
        assert mqtt_device(device, client_id=f"{device.device_id}-2").wait_connack() is False


class TestRefusedConnections:
    def test_unregistered_device_is_refused_over_mqtt_and_amqp(self, make_device, mqtt_device, amqp_connect):
        device = make_device(registered=False)
        client = mqtt_device(device)
        assert client.wait_connack() is False
        assert client.connack is None or client.connack.is_failure
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            amqp_connect(device.cert_file, device.key_file)

    def test_without_a_client_certificate_only_a_password_login_can_succeed(self, broker_node, mqtt_device,
                                                                              make_device, broker_ca):
        # TLS is accepted without a client certificate (password devices), but no login follows from it:
        # MQTT without credentials, and AMQP's EXTERNAL (which needs the certificate), are refused.
        certificate_device = make_device()
        anonymous = mqtt_device(None, client_id=certificate_device.device_id)
        assert anonymous.wait_connack() is False
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(amqp_parameters(broker_node, None, None))

    def test_certificate_from_another_ca_fails(self, broker_node, tmp_path, device_directory):
        from commands.pki import CertificateAuthority
        rogue = CertificateAuthority.load_or_create(tmp_path / "rogue")
        issued = rogue.issue_client_certificate("rogue-device", validity_days=1)
        (tmp_path / "c.pem").write_text(issued.certificate_pem)
        (tmp_path / "c.key").write_text(issued.private_key_pem)
        device_directory.register("rogue-device")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rogue-device", protocol=mqtt.MQTTv311)
        client.tls_set(ca_certs=str(broker_node.ca_file), certfile=str(tmp_path / "c.pem"),
                       keyfile=str(tmp_path / "c.key"))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client.connect("localhost", broker_node.ports.mqtts)
            client.loop_read()  # TLS 1.3 reports the rejected client certificate on the first read
            raise ConnectionError("refused") if not client.is_connected() else AssertionError("accepted")

    def test_mqtt_username_and_password_are_refused(self, make_device, mqtt_device, broker_node):
        device = make_device()
        client = mqtt_device(device, connect=False)
        client.client.username_pw_set(device.device_id, "anything")
        client.connect()
        assert client.wait_connack() is False


class TestDeviceOverAmqp:
    def test_libpyiotcloud_amqp_simulator_flow(self, make_device, amqp_connect, gateway_connection):
        device = make_device()
        connection = amqp_connect(device.cert_file, device.key_file)
        gateway = gateway_connection.channel()
        channel, own_queue, replies = libpyiotcloud_amqp_device(connection, gateway, device.device_id)

        gateway.basic_publish("amq.topic", f"{device.device_id}.get_gpio", b'{"number": 1}')
        method, _, body = next_message(channel, own_queue)
        assert method.routing_key == f"{device.device_id}.get_gpio"

        channel.basic_publish("amq.topic", f"server.{device.device_id}.get_gpio", b'{"number": 1, "value": 0}')
        method, _, _ = next_message(gateway, replies)
        assert method.routing_key == f"server.{device.device_id}.get_gpio"

    @pytest.mark.parametrize("action", [
        lambda ch, me, other: ch.queue_declare(f"mqtt-subscription-{other}qos1", auto_delete=True),
        lambda ch, me, other: ch.queue_declare(f"mqtt-subscription-{me}qos1-extra", auto_delete=True),
        lambda ch, me, other: ch.queue_declare("iotcloud.replies"),
        lambda ch, me, other: ch.exchange_delete("amq.topic"),
        lambda ch, me, other: ch.exchange_declare("my-exchange", exchange_type="fanout"),
        lambda ch, me, other: ch.queue_bind(f"mqtt-subscription-{me}qos1", "amq.topic", routing_key="#"),
        lambda ch, me, other: ch.queue_bind(f"mqtt-subscription-{me}qos1", "amq.topic", routing_key=f"{other}.#"),
        lambda ch, me, other: ch.queue_bind(f"mqtt-subscription-{me}qos1", "amq.rabbitmq.event",
                                            routing_key="connection.#"),
        lambda ch, me, other: ch.basic_publish("amq.topic", f"server.{other}.get_status", b"{}"),
        lambda ch, me, other: ch.basic_publish("amq.topic", f"{other}.set_gpio", b"{}"),
    ], ids=["other-queue", "prefixed-queue", "service-queue", "delete-amq-topic", "own-exchange",
            "bind-everything", "bind-other-device", "bind-events", "publish-as-other", "command-other"])
    def test_is_refused_outside_its_own_resources(self, make_device, amqp_connect, action):
        device, other = make_device(), make_device()
        channel = amqp_connect(device.cert_file, device.key_file).channel()
        channel.confirm_delivery()
        channel.queue_declare(f"mqtt-subscription-{device.device_id}qos1", auto_delete=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            action(channel, device.device_id, other.device_id)
        assert refused.value.reply_code == 403


class TestGatewayService:
    def test_receives_presence_events_for_device_connections(self, make_device, mqtt_device, gateway_connection):
        channel = gateway_connection.channel()
        channel.queue_declare("iotcloud.gateway.test-presence", exclusive=True)
        channel.queue_bind("iotcloud.gateway.test-presence", "amq.rabbitmq.event", routing_key="connection.#")
        device = make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        client.close()

        method, properties, _ = next_message(channel, "iotcloud.gateway.test-presence")
        while not (method.routing_key == "connection.created" and _header(properties, "user") == device.device_id):
            method, properties, _ = next_message(channel, "iotcloud.gateway.test-presence")
        name = _header(properties, "name")
        # 3.10's connection.closed for an MQTT connection carries no `user`: correlate by connection name.
        while not (method.routing_key == "connection.closed" and _header(properties, "name") == name):
            method, properties, _ = next_message(channel, "iotcloud.gateway.test-presence")

    @pytest.mark.parametrize("action", [
        lambda ch, dev: ch.queue_declare(f"mqtt-subscription-{dev}qos1", auto_delete=True),
        lambda ch, dev: ch.basic_consume(f"mqtt-subscription-{dev}qos1", lambda *a: None),
        lambda ch, dev: ch.queue_declare("not-iotcloud-queue"),
        lambda ch, dev: ch.queue_declare("iotcloud.api.not-the-gateways"),
        lambda ch, dev: ch.exchange_declare("amq.topic", exchange_type="topic", durable=True),
        lambda ch, dev: ch.queue_bind("iotcloud.gateway.probe", "amq.topic", routing_key=f"{dev}.#"),
        lambda ch, dev: ch.queue_bind("iotcloud.gateway.probe", "amq.topic", routing_key="#"),
        lambda ch, dev: ch.queue_bind("iotcloud.gateway.probe", "amq.rabbitmq.event", routing_key="#"),
        lambda ch, dev: ch.basic_publish("amq.topic", f"server.{dev}.get_status", b"{}"),
        lambda ch, dev: ch.basic_publish("amq.rabbitmq.event", "connection.created", b"{}"),
    ], ids=["declare-device-queue", "consume-device-queue", "foreign-queue", "api-queue",
            "configure-amq-topic", "read-device-requests", "read-everything", "read-all-events",
            "spoof-device-reply", "forge-event"])
    def test_is_refused_beyond_its_role(self, make_device, mqtt_device, gateway_connection, action):
        device = make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        assert not client.subscribe(f"{device.device_id}/#")[0].is_failure  # the device's queue exists
        channel = gateway_connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("iotcloud.gateway.probe", exclusive=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            action(channel, device.device_id)
        assert refused.value.reply_code == 403

    def test_cannot_connect_over_mqtt(self, broker_node, mqtt_device):
        credentials = broker_node.service_credentials("iotcloud-gateway")
        client = mqtt_device(DeviceCert("iotcloud-gateway", credentials.cert_file, credentials.key_file))
        assert client.wait_connack() is False


def _wait_until(condition, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


class TestRevocation:
    @pytest.mark.serial
    def test_unregistering_closes_established_connections_within_one_second(
            self, make_device, mqtt_device, amqp_connect, device_directory, broker_admin):
        device = make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        amqp = amqp_connect(device.cert_file, device.key_file)
        _wait_until(lambda: len(broker_admin.connections_of(device.device_id)) == 2)  # established, listed

        started = time.monotonic()
        device_directory.unregister(device.device_id)
        closed = broker_admin.close_device_connections(device.device_id)
        assert client.disconnected.wait(1.0)
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            amqp.process_data_events(time_limit=1.0)
            amqp.channel()
        assert closed == 2
        assert time.monotonic() - started < 1.0

        assert mqtt_device(device).wait_connack() is False

    def test_a_connection_opened_just_before_revocation_is_closed_by_the_first_sweep(
            self, make_device, mqtt_device, device_directory, broker_admin):
        # Connection tracking lists a connection the moment the broker accepts it (the statistics database,
        # asked before, listed it ~5 s late, and a sweep right after the revocation missed it).
        device = make_device()
        client = mqtt_device(device)
        assert client.wait_connack()
        device_directory.unregister(device.device_id)
        assert broker_admin.close_device_connections(device.device_id) == 1
        assert client.disconnected.wait(1.0)


def _header(properties, name):
    value = (properties.headers or {}).get(name)
    return value.decode() if isinstance(value, bytes) else value
