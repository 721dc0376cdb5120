"""One private RabbitMQ node for the whole session, on free loopback ports, with real TLS and real certs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pika
import pytest
from broker_testkit import GATEWAY, DeviceCert, MqttDevice, amqp_parameters

from commands.domain.device_ids import new_device_id
from commands.fleet import DeviceFleet
from commands.pki import CertificateAuthority
from gateways.broker import (AuthBackendIdentity, AuthBackendServer, BrokerStartError, BrokerAdmin, BrokerPorts,
                             InMemoryDeviceDirectory, PrivateBrokerNode, create_auth_app,
                             load_or_create_admin_credentials)
from gateways.broker.directory import FleetDirectory
from tests.ports import free_ports


@pytest.fixture(scope="session")
def broker_ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def device_directory() -> InMemoryDeviceDirectory:
    return InMemoryDeviceDirectory()


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, broker_ca) -> DeviceFleet:
    """A real DeviceFleet on a SQLite file, signing with the broker's CA: devices registered through it log
    in because the auth backend reads its log, as the `iotcloud broker-auth` process does."""
    store = tmp_path_factory.mktemp("fleet") / "fleet.sqlite3"
    application = DeviceFleet(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(store)},
                              ca=broker_ca, certificate_days=1)
    yield application
    application.close()


@pytest.fixture(scope="session")
def fleet_directory(fleet):
    """What the broker-auth process answers from (a second instance of the fleet, as in another process)."""
    reader = DeviceFleet(env=dict(fleet.env), ca=None)
    yield FleetDirectory(reader)
    reader.close()


class EitherDirectory:
    """Registered in the tests' hand-kept set or in the fleet's log."""

    def __init__(self, *directories):
        self._directories = directories

    def is_registered(self, device_id: str) -> bool:
        return any(directory.is_registered(device_id) for directory in self._directories)

    def password_hash(self, device_id: str) -> str | None:
        return next(filter(None, (directory.password_hash(device_id) for directory in self._directories)), None)


@pytest.fixture(scope="session")
def broker_state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rmq")


@pytest.fixture(scope="session")
def auth_identity(broker_state_dir) -> AuthBackendIdentity:
    return AuthBackendIdentity.load_or_create(broker_state_dir)


@pytest.fixture(scope="session")
def auth_server(device_directory, fleet_directory, broker_state_dir, auth_identity):
    app = create_auth_app(EitherDirectory(device_directory, fleet_directory), [GATEWAY], secret=auth_identity.secret,
                          admin=load_or_create_admin_credentials(broker_state_dir))
    server = AuthBackendServer(app, auth_identity).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker_node(auth_server, auth_identity, broker_ca, broker_state_dir):
    mqtts, amqps, management, dist, epmd = free_ports(5)
    node = PrivateBrokerNode(broker_state_dir, broker_ca, auth_backend_url=auth_server.url,
                             auth_backend_cafile=auth_identity.ca_file,
                             ports=BrokerPorts(mqtts=mqtts, amqps=amqps, management=management,
                                               dist=dist, epmd=epmd),
                             node_name=f"iotcloud-test-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    try:
        for attempt in range(3):  # a port taken between probing and binding: retry on fresh ports
            try:
                node.start()
                break
            except BrokerStartError:
                node.stop()
                if attempt == 2:
                    raise
                mqtts, amqps, management, dist, epmd = free_ports(5)
                node.ports = BrokerPorts(mqtts=mqtts, amqps=amqps, management=management, dist=dist, epmd=epmd)
        node.first_boot_seconds = time.monotonic() - started
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def broker_admin(broker_node):
    admin = BrokerAdmin.for_node(broker_node)
    yield admin
    admin.close()


@pytest.fixture
def make_device(broker_ca, device_directory, tmp_path):
    """Issues a device certificate; registers the device in the directory unless told not to."""

    def make(registered: bool = True, device_id: str | None = None) -> DeviceCert:
        device_id = device_id or new_device_id()
        issued = broker_ca.issue_client_certificate(device_id, validity_days=1)
        cert_file, key_file = tmp_path / f"{device_id}.pem", tmp_path / f"{device_id}.key"
        cert_file.write_text(issued.certificate_pem)
        key_file.write_text(issued.private_key_pem)
        if registered:
            device_directory.register(device_id)
        return DeviceCert(device_id, cert_file, key_file)

    return make


@pytest.fixture
def mqtt_device(broker_node):
    clients: list[MqttDevice] = []

    def make(cert: DeviceCert | None, client_id: str | None = None, connect: bool = True) -> MqttDevice:
        client = MqttDevice(broker_node, cert, client_id or (cert.device_id if cert else "anonymous"))
        clients.append(client)
        return client.connect() if connect else client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def amqp_connect(broker_node):
    connections: list[pika.BlockingConnection] = []

    def connect(cert_file: Path | None, key_file: Path | None = None) -> pika.BlockingConnection:
        connection = pika.BlockingConnection(amqp_parameters(broker_node, cert_file, key_file))
        connections.append(connection)
        return connection

    yield connect
    for connection in connections:
        if connection.is_open:
            connection.close()


@pytest.fixture
def gateway_connection(broker_node, amqp_connect):
    credentials = broker_node.service_credentials(GATEWAY)
    return amqp_connect(credentials.cert_file, credentials.key_file)
