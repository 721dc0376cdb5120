"""Broker wiring: the embedded private RabbitMQ node, its auth backend, and service identities."""

from __future__ import annotations

import ssl

from commands.pki import CertificateAuthority
from commands.secret_files import read_secret
from gateways.broker.admin import BrokerAdmin
from gateways.broker.auth_backend import AuthBackendIdentity
from gateways.broker.node import LOOPBACK_PASSWORD_FILE, BrokerPorts, PrivateBrokerNode, load_or_create_admin_credentials
from gateways.broker.revocation import BrokerRevocation, CertificateRevocations, crl_directory
from gateways.broker.topology import SERVICE_PERMISSIONS
from gateways.devices.broker_link import BrokerAddress
from iotcloud.config import Settings


def embedded_node(settings: Settings) -> PrivateBrokerNode:
    ports = BrokerPorts(mqtts=settings.mqtt_port, amqps=settings.amqp_port,
                        management=settings.broker_management_port, dist=settings.broker_dist_port,
                        epmd=settings.broker_epmd_port, amqp_loopback=settings.broker_loopback)
    backend = AuthBackendIdentity.load_or_create(settings.broker_dir)
    return PrivateBrokerNode(settings.broker_dir, CertificateAuthority.load_or_create(settings.pki_dir),
                             auth_backend_url=f"https://localhost:{settings.broker_auth_port}/{backend.secret}",
                             auth_backend_cafile=backend.ca_file, ports=ports, host=settings.broker_host,
                             queue_type=settings.broker_queue_type, statistics=settings.broker_statistics_enabled)


def cluster_node(settings: Settings, name: str, state_dir, ports: BrokerPorts) -> PrivateBrokerNode:
    """Another node for the embedded node's cluster, on this machine: the same CA, auth backend, queue
    type, Erlang cookie and epmd (its own dist, AMQPS, MQTTS and management ports). Start it, then
    `join_cluster(embedded_node(settings).node_name)`. Used by the several-instances test; a real
    cluster runs one node per machine (docs/scaling.md)."""
    seed = embedded_node(settings)
    if ports.epmd != seed.ports.epmd:
        raise ValueError("the nodes of one machine find each other through one epmd")
    return PrivateBrokerNode(state_dir, seed.authority, auth_backend_url=seed.auth_backend_url,
                             auth_backend_cafile=seed.auth_backend_cafile, ports=ports, node_name=name,
                             host=settings.broker_host, queue_type=settings.broker_queue_type,
                             statistics=seed.statistics, erlang_cookie=seed.read_cookie())


def certificate_revocation(settings: Settings, ca) -> BrokerRevocation | None:
    """What makes unregister and reissue answer only once the embedded broker refuses the old certificate."""
    if settings.broker != "embedded":
        return None
    return BrokerRevocation(CertificateRevocations(crl_directory(settings.broker_dir), ca), admin_client(settings))


def issue_service_credentials(settings: Settings, node: PrivateBrokerNode) -> None:
    passwords = {name: node.service_password(name) for name in SERVICE_PERMISSIONS}  # issues each certificate too
    admin = BrokerAdmin.for_node(node)
    try:
        admin.provision_services(SERVICE_PERMISSIONS, passwords if node.ports.amqp_loopback else None)
    finally:
        admin.close()


def service_address(settings: Settings, name: str) -> BrokerAddress | None:
    """Plain AMQP on the embedded node's loopback listener with the service's password, else AMQPS +
    EXTERNAL with its own certificate; None when no broker is configured."""
    if settings.broker == "none":
        return None
    folder = settings.service_credentials_dir / name
    password_file = folder / LOOPBACK_PASSWORD_FILE
    if settings.broker_loopback and password_file.exists():
        return BrokerAddress("127.0.0.1", settings.broker_loopback, None, name=name,
                             queue_type=settings.broker_queue_type,
                             login=(name, read_secret(password_file).decode().strip()))
    ca_file = settings.broker_dir / "certs" / "ca.pem" if settings.broker == "embedded" else folder / "ca.pem"
    if not (folder / "cert.pem").exists() or not ca_file.exists():
        return None
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
    return BrokerAddress(settings.broker_host, settings.amqp_port, context, settings.broker_tls_name, name,
                         alternates=settings.broker_alternates, queue_type=settings.broker_queue_type)


def admin_client(settings: Settings) -> BrokerAdmin | None:
    if settings.broker != "embedded":
        return None
    return BrokerAdmin(f"http://127.0.0.1:{settings.broker_management_port}",
                       load_or_create_admin_credentials(settings.broker_dir),
                       alternates=settings.broker_management_alternates)
