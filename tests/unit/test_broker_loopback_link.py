"""The embedded node's loopback listener: plain AMQP on 127.0.0.1 for the platform's own services, each
logging in with a password of its own (docs/architecture.md, "The services' link to the broker"). The
logins themselves, against a real node, are in tests/control/test_service_link.py."""

from __future__ import annotations

import dataclasses
import shutil
import stat

import pika

from commands.pki import CertificateAuthority
from gateways.broker.node import BrokerPorts, PrivateBrokerNode
from gateways.broker.node_config import rabbitmq_conf
from iotcloud.broker import embedded_node, service_address
from iotcloud.config import DEFAULT_BROKER_LOOPBACK_PORT, Settings


def _settings(tmp_path, **env) -> Settings:
    return Settings.from_env({"IOTCLOUD_STATE_DIR": str(tmp_path), **env})


def test_only_an_embedded_single_node_gets_a_loopback_listener(tmp_path):
    assert _settings(tmp_path).broker_loopback == DEFAULT_BROKER_LOOPBACK_PORT
    assert _settings(tmp_path, IOTCLOUD_BROKER_LOOPBACK_PORT="5999").broker_loopback == 5999
    assert _settings(tmp_path, IOTCLOUD_BROKER_LOOPBACK_PORT="0").broker_loopback is None
    assert _settings(tmp_path, IOTCLOUD_BROKER="external").broker_loopback is None
    # On a cluster the services fail over to other nodes, over the network: TLS to all of them.
    assert _settings(tmp_path, IOTCLOUD_BROKER_AMQP_NODES="rabbit-2:5671").broker_loopback is None


def test_the_listener_is_bound_to_loopback_whatever_address_the_devices_use(tmp_path):
    authority = CertificateAuthority.load_or_create(tmp_path / "pki")
    node = PrivateBrokerNode(tmp_path / "a", authority, auth_backend_url="http://127.0.0.1:1", host="0.0.0.0",
                             ports=BrokerPorts(amqp_loopback=5999))
    conf = rabbitmq_conf(node).splitlines()
    assert "listeners.tcp.default = 127.0.0.1:5999" in conf
    assert "listeners.ssl.default = 0.0.0.0:5671" in conf
    assert "listeners.tcp = none" not in conf
    assert not [line for line in conf if line.startswith("mqtt.listeners.tcp.")]  # MQTT stays TLS only
    without = PrivateBrokerNode(tmp_path / "b", authority, auth_backend_url="http://127.0.0.1:1")
    assert "listeners.tcp = none" in rabbitmq_conf(without).splitlines()
    assert "listeners.tcp.default" not in rabbitmq_conf(without)


def test_a_service_logs_in_on_the_loopback_listener_with_its_own_password(tmp_path):
    settings = _settings(tmp_path, IOTCLOUD_BROKER_LOOPBACK_PORT="5999", IOTCLOUD_AMQP_PORT="5671")
    node = embedded_node(settings)
    assert node.ports.amqp_loopback == 5999
    credentials = node.service_credentials("iotcloud-api")
    password_file = credentials.loopback_password_file
    assert password_file.parent == credentials.key_file.parent
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    password = node.service_password("iotcloud-api")
    assert password and password == node.service_password("iotcloud-api")  # stable across starts
    assert password != node.service_password("iotcloud-gateway")

    address = service_address(settings, "iotcloud-api")
    parameters = address.parameters()
    assert (parameters.host, parameters.port, parameters.ssl_options) == ("127.0.0.1", 5999, None)
    assert isinstance(parameters.credentials, pika.PlainCredentials)
    assert (parameters.credentials.username, parameters.credentials.password) == ("iotcloud-api", password)
    assert password not in repr(address) and password not in str(address)


def test_without_the_listener_a_service_presents_its_certificate(tmp_path):
    settings = _settings(tmp_path, IOTCLOUD_BROKER_LOOPBACK_PORT="0", IOTCLOUD_AMQP_PORT="5671")
    node = embedded_node(settings)
    credentials = node.service_credentials("iotcloud-gateway")
    parameters = service_address(settings, "iotcloud-gateway").parameters()
    assert (parameters.host, parameters.port) == ("127.0.0.1", 5671)
    assert parameters.ssl_options is not None
    assert isinstance(parameters.credentials, pika.credentials.ExternalCredentials)
    # A broker of someone else's (compose, Kubernetes): certificates, even with a password file about.
    shutil.copy(node.ca_file, credentials.cert_file.parent / "ca.pem")  # what an external broker's bundle holds
    external = dataclasses.replace(settings, broker="external", broker_loopback_port=5999)
    assert service_address(external, "iotcloud-gateway").parameters().ssl_options is not None
