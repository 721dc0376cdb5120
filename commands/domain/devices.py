"""Registered devices and the per-owner device-name claim."""

from __future__ import annotations

import re
import secrets
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from commands.domain.audited import AuditedAggregate
from commands.errors import DeviceNotFound

# 160 random bits as 40 lowercase hex characters: the shape of libpyiotcloud device ids, so FT900
# firmware buffers fit; hex is a valid MQTT client id and AMQP routing-key word.
DEVICE_ID_PATTERN = re.compile(r"^[0-9a-f]{40}\Z")  # \Z, not $: "$" also matches before a final newline


def new_device_id() -> str:
    return secrets.token_hex(20)


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
