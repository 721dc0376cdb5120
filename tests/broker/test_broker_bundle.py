"""`iotcloud broker-config` (docker compose's init, a broker the platform does not start): the files
it writes boot a real RabbitMQ, whose service users come from the definitions file alone (nothing
provisioned over the management API), and the gateway logs in with its certificate and declares
everything its job needs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.ports import free_port

from gateways.broker.topology import GATEWAY_SERVICE
from gateways.devices.broker_link import GatewayLink
from iotcloud.bootstrap import prepare_state
from iotcloud.broker import service_address
from iotcloud.broker_bundle import broker_node_files
from iotcloud.config import Settings


def test_the_generated_configuration_boots_a_broker_the_services_can_use():
    # Not under pytest's tmp_path: RabbitMQ's paths must stay short (Unix socket names).
    root = Path(tempfile.mkdtemp(prefix="iotcloud-bundle-"))
    mqtt, amqp, management, dist, epmd, auth = (free_port() for _ in range(6))
    settings = Settings(state_dir=root, mqtt_port=mqtt, amqp_port=amqp, broker_management_port=management,
                        broker_dist_port=dist, broker_epmd_port=epmd, broker_auth_port=auth, broker="external",
                        broker_service_dir=str(root / "services"), api_https_port=0)
    prepare_state(settings)
    node = broker_node_files(settings, ("localhost",), host="127.0.0.1", console_log=False)
    assert f"load_definitions = {root / 'broker' / 'definitions.json'}" in node.config_file.read_text()
    node.start()
    try:
        link = GatewayLink(service_address(settings, GATEWAY_SERVICE))  # EXTERNAL login, its queues and exchanges
        assert link.connection.is_open
        link.close()
        users = node.rabbitmqctl("list_users", "--quiet").stdout
        assert "iotcloud-gateway" in users and "iotcloud-api" in users
        assert "guest" not in users and "iotcloud-unused" not in users  # no default user with definitions
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)
