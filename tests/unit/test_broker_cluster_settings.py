"""The settings of a RabbitMQ cluster (docs/scaling.md): the queue type reaches the services' durable
queues and the node's MQTT sessions, services know the other nodes in order, and the management
client moves to the next node when one does not answer. The cluster itself is exercised by
tests/resilience/test_several_instances.py."""

from __future__ import annotations

import http.server
import threading

import pytest

from commands.pki import CertificateAuthority
from gateways.broker.admin import BrokerAdmin
from gateways.broker.node import AdminCredentials, PrivateBrokerNode
from gateways.broker.node_config import rabbitmq_conf
from gateways.broker.topology import durable_queue_arguments
from iotcloud.broker import service_address
from iotcloud.config import Settings
from tests.ports import free_port


def test_the_single_node_default_declares_classic_queues_and_a_cluster_quorum_ones():
    assert Settings().broker_queue_type == "classic"
    assert durable_queue_arguments("classic") == {}  # as declared before clusters existed: no migration
    assert durable_queue_arguments("quorum") == {"x-queue-type": "quorum"}
    with pytest.raises(ValueError):
        durable_queue_arguments("stream")


def test_other_nodes_are_host_port_lists_and_bad_entries_are_refused():
    settings = Settings.from_env({"IOTCLOUD_BROKER_AMQP_NODES": "rabbit-2:5671, [::1]:5672,",
                                  "IOTCLOUD_BROKER_MANAGEMENT_NODES": "127.0.0.1:15674"})
    assert settings.broker_alternates == (("rabbit-2", 5671), ("::1", 5672))
    assert settings.broker_management_alternates == (("127.0.0.1", 15674),)
    assert Settings().broker_alternates == ()
    with pytest.raises(ValueError, match="IOTCLOUD_BROKER_AMQP_NODES"):
        _ = Settings.from_env({"IOTCLOUD_BROKER_AMQP_NODES": "rabbit-2"}).broker_alternates


def test_a_service_tries_its_node_then_the_others_in_order(tmp_path):
    settings = Settings.from_env({"IOTCLOUD_STATE_DIR": str(tmp_path), "IOTCLOUD_AMQP_PORT": "5671",
                                  "IOTCLOUD_BROKER_AMQP_NODES": "127.0.0.1:5681,127.0.0.1:5691",
                                  "IOTCLOUD_BROKER_QUEUE_TYPE": "quorum"})
    authority = CertificateAuthority.load_or_create(settings.pki_dir)
    node = PrivateBrokerNode(settings.broker_dir, authority, auth_backend_url="http://127.0.0.1:1")
    node.service_credentials("iotcloud-gateway")
    address = service_address(settings, "iotcloud-gateway")
    assert [(p.host, p.port) for p in address.all_parameters()] == [
        ("127.0.0.1", 5671), ("127.0.0.1", 5681), ("127.0.0.1", 5691)]
    assert address.queue_type == "quorum"


def test_the_node_keeps_device_sessions_in_quorum_queues_only_on_a_cluster(tmp_path):
    authority = CertificateAuthority.load_or_create(tmp_path / "pki")
    single = PrivateBrokerNode(tmp_path / "a", authority, auth_backend_url="http://127.0.0.1:1")
    clustered = PrivateBrokerNode(tmp_path / "b", authority, auth_backend_url="http://127.0.0.1:1",
                                  queue_type="quorum")
    assert "durable_queue_type" not in rabbitmq_conf(single)
    assert "mqtt.durable_queue_type = quorum\n" in rabbitmq_conf(clustered)
    with pytest.raises(ValueError):
        PrivateBrokerNode(tmp_path / "c", authority, auth_backend_url="http://127.0.0.1:1", queue_type="mirrored")


class _Overview(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server hook's name
        body = b'{"cluster_name": "test"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_management_client_moves_to_the_next_node_when_one_refuses():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Overview)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dead = free_port()  # nothing listens there: a killed node
        admin = BrokerAdmin(f"http://127.0.0.1:{dead}", AdminCredentials("admin", "secret"),
                            alternates=(("127.0.0.1", server.server_address[1]),))
        assert admin._request("GET", "/api/overview") == (200, b'{"cluster_name": "test"}')
        assert admin._request("GET", "/api/overview")[0] == 200  # and stays there
        alone = BrokerAdmin(f"http://127.0.0.1:{dead}", AdminCredentials("admin", "secret"))
        with pytest.raises(ConnectionRefusedError):
            alone._request("GET", "/api/overview")
    finally:
        server.shutdown()
        server.server_close()
