"""Registered devices and the per-owner device-name claim."""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate
from commands.errors import DeviceNotFound


class Device(AuditedAggregate):
    """A device: its owner, name, id and current client certificate."""

    @staticmethod
    def create_id(device_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/iotcloud/devices/{device_id}")

    @event("Registered")
    def __init__(self, device_id: str, owner: str, name: str, certificate: dict, correlation_ids: bool = False):
        self.device_id = device_id
        self.owner = owner
        self.name = name
        self.certificate = certificate
        self.correlation_ids = correlation_ids
        self.registered = True
        self.online = False
        self.broker_password_hash: str | None = None  # set only for devices registered for password login

    @event("BrokerPasswordSet")
    def set_broker_password(self, password_hash: str) -> None:
        """Password login enabled (at registration) or its password rotated; the old one stops working."""
        self.check_registered()
        self.broker_password_hash = password_hash

    @event("CertificateReissued")
    def reissue_certificate(self, certificate: dict) -> None:
        self.check_registered()
        self.certificate = certificate

    @event("Unregistered")
    def unregister(self) -> None:
        self.check_registered()
        self.registered = False

    @event("Connected")
    def connect(self, at: float, protocol: str) -> None:
        self.online = True

    @event("Disconnected")
    def disconnect(self, at: float) -> None:
        self.online = False

    def check_registered(self) -> None:
        if not self.registered:
            raise DeviceNotFound(f"device {self.device_id} is unregistered")


class DeviceNameClaim(AuditedAggregate):
    """Reserves a device name for one owner; released when its device is unregistered."""

    @staticmethod
    def create_id(owner: str, name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"/iotcloud/device-names/{owner.lower()}/{name}")

    @event("Claimed")
    def __init__(self, owner: str, name: str, device_id: str):
        self.owner = owner
        self.name = name
        self.device_id: str | None = device_id

    @event("Reclaimed")
    def reclaim(self, device_id: str) -> None:
        self.device_id = device_id

    @event("Released")
    def release(self) -> None:
        self.device_id = None
