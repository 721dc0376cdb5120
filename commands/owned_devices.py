"""Which device a user's name refers to, as the write side recorded it.

Authorisation must not rest on the read models: they live in a store the API does not own (the
embedded one answers anyone on loopback), so a tampered `device_list` row could hand a device to
another user or point a call at someone else's device. The DeviceNameClaim and Device aggregates
can only change through DeviceFleet's commands; the fleet's aggregate cache keeps the lookup cheap.
"""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from commands.domain.devices import Device, DeviceNameClaim
from commands.errors import DeviceNotFound
from commands.fleet import DeviceFleet


def owned_device(fleet: DeviceFleet, owner: str, name: str) -> dict:
    """The registered device `owner` calls `name`: device id, owner, name and correlation; or DeviceNotFound."""
    missing = DeviceNotFound(f"device '{name}' is not registered")
    try:
        claim = fleet.repository.get(DeviceNameClaim.create_id(owner, name))
        if claim.device_id is None:
            raise missing
        device = fleet.repository.get(Device.create_id(claim.device_id))
    except (AggregateNotFoundError, TypeError, ValueError):
        raise missing from None
    if not device.registered or device.owner.lower() != owner.lower() or device.name != name:
        raise missing
    return {"device_id": device.device_id, "owner": device.owner, "name": device.name,
            "correlation_ids": bool(device.correlation_ids)}


def registered_device(fleet: DeviceFleet, device_id: str) -> dict | None:
    """The registered device with this id (id, owner, name), or None: for messages a device sent itself."""
    try:
        device = fleet.repository.get(Device.create_id(device_id))
    except (AggregateNotFoundError, TypeError, ValueError):
        return None
    if not device.registered:
        return None
    return {"device_id": device.device_id, "owner": device.owner, "name": device.name}
