"""`iotcloud broker-config`: the configuration of a RabbitMQ that the platform does not start itself
(the `rabbitmq` service of docker-compose.yml, a broker pod), written once by the `init` job.

The same rabbitmq.conf and advanced.config as the embedded node (node_config.py: TLS only, client
certificates, the HTTP auth backend, CRL checks), listening on every interface, plus a definitions
file that creates the platform services' internal users with the permissions topology.py derives
(the embedded node gets them over its management API, which a broker elsewhere does not offer us).
Each service's client certificate, key and the CA land in `<services>/<name>/`, where
IOTCLOUD_BROKER=external expects them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from commands.pki import CertificateAuthority
from commands.secret_files import write_secret
from gateways.broker.auth_backend import AuthBackendIdentity
from gateways.broker.node import BrokerPorts, PrivateBrokerNode, load_or_create_admin_credentials
from gateways.broker.topology import SERVICE_PERMISSIONS
from iotcloud.config import Settings

ANY_INTERFACE = "0.0.0.0"


def broker_node_files(settings: Settings, hostnames: tuple[str, ...], host: str = ANY_INTERFACE,
                      console_log: bool = True) -> PrivateBrokerNode:
    """Writes the broker's files under IOTCLOUD_STATE_DIR/broker; returns the node they describe
    (which can also be started here, as a private node: tests/broker/test_broker_bundle.py).
    The auth backend is reached as localhost: it shares the broker's network namespace (a sidecar)."""
    ports = BrokerPorts(mqtts=settings.mqtt_port, amqps=settings.amqp_port,
                        management=settings.broker_management_port, dist=settings.broker_dist_port,
                        epmd=settings.broker_epmd_port)
    backend = AuthBackendIdentity.load_or_create(settings.broker_dir)
    node = PrivateBrokerNode(settings.broker_dir, CertificateAuthority.load_or_create(settings.pki_dir),
                             auth_backend_url=f"https://localhost:{settings.broker_auth_port}/{backend.secret}",
                             auth_backend_cafile=backend.ca_file, ports=ports, host=host,
                             hostnames=hostnames, definitions_file=settings.broker_dir / "definitions.json",
                             queue_type=settings.broker_queue_type,
                             statistics=settings.broker_statistics_enabled)
    settings.broker_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret(node.definitions_file, json.dumps(service_definitions(), indent=2).encode(), replace=True)
    node.write_files()
    load_or_create_admin_credentials(settings.broker_dir)  # the auth backend reads them (read-only there)
    if console_log:  # in a container the log goes to the console (the runtime keeps it), not to files
        conf = node.config_file.read_text().replace("log.console = false", "log.console = true") \
            .replace("log.file.level = info", "log.file = false")
        write_secret(node.config_file, conf.encode(), replace=True)
    for name in SERVICE_PERMISSIONS:
        credentials = node.service_credentials(name)
        folder = settings.service_credentials_dir / name
        if folder != credentials.cert_file.parent:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(credentials.cert_file, folder / "cert.pem")
            write_secret(folder / "key.pem", credentials.key_file.read_bytes(), replace=True)
        shutil.copyfile(node.ca_file, folder / "ca.pem")
    return node


def service_definitions() -> dict:
    """RabbitMQ definitions: the services as password-less users (they log in with their certificates)."""
    users, permissions, topics = [], [], []
    for name, grant in SERVICE_PERMISSIONS.items():
        users.append({"name": name, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
                      "tags": []})
        permissions.append({"user": name, "vhost": "/", "configure": grant.configure, "write": grant.write,
                            "read": grant.read})
        topics += [{"user": name, "vhost": "/", "exchange": exchange, "write": write, "read": read}
                   for exchange, (write, read) in grant.topics.items()]
    return {"vhosts": [{"name": "/"}], "users": users, "permissions": permissions, "topic_permissions": topics}


def describe(node: PrivateBrokerNode) -> list[Path]:
    return [node.config_file, node.advanced_config_file, node.state_dir / "enabled_plugins",
            node.state_dir / "definitions.json"]
