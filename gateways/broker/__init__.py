"""Broker infrastructure: the private RabbitMQ node, its HTTP auth backend and connection admin."""

from .admin import BrokerAdmin, BrokerAdminError
from .auth_backend import AuthBackendServer, create_auth_app
from .directory import DeviceDirectory, InMemoryDeviceDirectory
from .node import (AdminCredentials, BrokerPorts, BrokerStartError, PrivateBrokerNode, ServiceCredentials,
                   load_or_create_admin_credentials)
from .policy import is_valid_device_id

__all__ = [
    "AdminCredentials", "AuthBackendServer", "BrokerAdmin", "BrokerAdminError", "BrokerPorts",
    "BrokerStartError", "DeviceDirectory", "InMemoryDeviceDirectory", "PrivateBrokerNode",
    "ServiceCredentials", "create_auth_app", "is_valid_device_id",
    "load_or_create_admin_credentials",
]
