"""Broker infrastructure: the private RabbitMQ node, its HTTP auth backend and connection admin."""

from .admin import BrokerAdmin, BrokerAdminError
from .auth_backend import AuthBackendIdentity, create_auth_app
from .auth_server import AuthBackendServer
from .directory import DeviceDirectory, InMemoryDeviceDirectory
from .node import (AdminCredentials, BrokerPorts, BrokerStartError, PrivateBrokerNode, ServiceCredentials,
                   load_or_create_admin_credentials)
from .revocation import CertificateRevocations, crl_directory

__all__ = [
    "AdminCredentials", "AuthBackendIdentity", "AuthBackendServer", "BrokerAdmin", "BrokerAdminError", "BrokerPorts",
    "BrokerStartError", "DeviceDirectory", "InMemoryDeviceDirectory", "PrivateBrokerNode",
    "CertificateRevocations", "ServiceCredentials", "create_auth_app", "crl_directory",
    "load_or_create_admin_credentials",
]
