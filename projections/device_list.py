"""The device-list read model: one document per registered device, queried per owner."""

from __future__ import annotations

from functools import singledispatchmethod

from pymongo import ASCENDING
from pymongo.collection import Collection

from commands.domain.devices import Device
from projections.guarded import BatchWriter
from queries.read_models import DEVICE_LIST

PUBLIC_CERTIFICATE_FIELDS = ("serial", "fingerprint_sha256", "not_before", "not_after", "pem")


def _public_certificate(certificate: dict) -> dict:
    return {key: certificate[key] for key in PUBLIC_CERTIFICATE_FIELDS}


class DeviceListProjection:
    """Device.Registered / CertificateReissued / Unregistered -> `device_list_g<N>`, keyed by aggregate id."""

    name = DEVICE_LIST
    sources = ("DeviceFleet",)

    def prepare(self, devices: Collection) -> None:
        devices.create_index([("owner", ASCENDING), ("name", ASCENDING)], unique=True)
        devices.create_index([("device_id", ASCENDING)], unique=True)

    @singledispatchmethod
    def apply(self, event, position: int, devices: BatchWriter) -> None:
        """Events this read model does not show are skipped."""

    @apply.register
    def _(self, event: Device.Registered, position: int, devices: BatchWriter) -> None:
        devices.set(str(event.originator_id), position, {
            "device_id": event.device_id,
            "owner": event.owner,
            "name": event.name,
            "certificate": _public_certificate(event.certificate),
            "status": "registered",
            "connection": "offline",
            "last_seen": None,
            "correlation_ids": getattr(event, "correlation_ids", False),
            "registered_at": event.timestamp,
            "updated_at": event.timestamp,
        })

    @apply.register
    def _(self, event: Device.CertificateReissued, position: int, devices: BatchWriter) -> None:
        devices.set(str(event.originator_id), position,
                    {"certificate": _public_certificate(event.certificate), "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Device.BrokerPasswordSet, position: int, devices: BatchWriter) -> None:
        # Never the hash: the owner sees only that the device accepts a password, and since when.
        devices.set(str(event.originator_id), position, {"login": "password", "password_set_at": event.timestamp,
                                                         "updated_at": event.timestamp})

    @apply.register
    def _(self, event: Device.Connected, position: int, devices: BatchWriter) -> None:
        devices.set(str(event.originator_id), position,
                    {"connection": "online", "protocol": event.protocol, "last_seen": event.timestamp})

    @apply.register
    def _(self, event: Device.Disconnected, position: int, devices: BatchWriter) -> None:
        devices.set(str(event.originator_id), position, {"connection": "offline", "last_seen": event.timestamp})

    @apply.register
    def _(self, event: Device.Unregistered, position: int, devices: BatchWriter) -> None:
        devices.delete(str(event.originator_id), position)
