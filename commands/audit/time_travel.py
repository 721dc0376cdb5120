"""The device as it was at a revision or a moment, folded from its stored events.

Snapshots (every SNAPSHOT_INTERVAL versions, taken by DeviceFleet when it saves, and here for devices
recorded before that) bound the fold to fewer than SNAPSHOT_INTERVAL events. Snapshots are a cache
outside the chain: `use_snapshots=False` folds every event from the first, for a result that rests
only on what `audit verify` checked."""

from __future__ import annotations

import datetime as dt

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from commands.domain.devices import Device
from commands.errors import DeviceNotFound
from commands.fleet import SNAPSHOT_INTERVAL



def device_at_revision(fleet: Application, device_id: str, revision: int | None,
                       use_snapshots: bool = True) -> Device:
    aggregate_id = Device.create_id(device_id)
    if revision is not None and revision < 1:
        raise DeviceNotFound(f"device {device_id} has no revision {revision}")
    if not use_snapshots or fleet.snapshots is None:
        device = None
        for event in fleet.events.get(aggregate_id, lte=revision):
            device = event.mutate(device)
        if device is None:
            raise DeviceNotFound(f"no device {device_id}")
        return device
    _backfill_snapshots(fleet, aggregate_id, revision)
    try:
        return fleet.repository.get(aggregate_id, version=revision)
    except AggregateNotFoundError:
        raise DeviceNotFound(f"no device {device_id}") from None


def revision_at(fleet: Application, device_id: str, at: dt.datetime) -> int:
    """The last revision recorded at or before `at`: a binary search over the device's event
    timestamps, which increase with its versions (one writer at a time saves a device)."""
    aggregate_id = Device.create_id(device_id)
    last = list(fleet.recorder.select_events(aggregate_id, desc=True, limit=1))
    if not last:
        raise DeviceNotFound(f"no device {device_id}")

    def recorded_at(version: int) -> dt.datetime:
        return next(iter(fleet.events.get(aggregate_id, gt=version - 1, lte=version))).timestamp

    low, high = 0, last[0].originator_version  # revisions 1..low were recorded at or before `at`
    while low < high:
        middle = (low + high + 1) // 2
        if recorded_at(middle) <= at:
            low = middle
        else:
            high = middle - 1
    revision = low
    if revision == 0:
        raise DeviceNotFound(f"device {device_id} did not exist yet at {at.isoformat()}")
    return revision


def device_record(device: Device) -> dict:
    """The device's state as auditors read it (the certificate's public facts, not its PEM)."""
    certificate = device.certificate or {}
    return {"device_id": device.device_id, "owner": device.owner, "name": device.name,
            "revision": device.version, "as_of": device.modified_on.isoformat(),
            "registered_at": device.created_on.isoformat(), "registered": device.registered,
            "online": device.online, "correlation_ids": device.correlation_ids,
            "certificate": {k: certificate.get(k) for k in ("serial", "fingerprint_sha256", "not_before", "not_after")}}


def _backfill_snapshots(fleet: Application, aggregate_id, revision: int | None) -> None:
    """Devices recorded before snapshots existed get them on their first audit, once."""
    last = list(fleet.recorder.select_events(aggregate_id, desc=True, limit=1))
    if not last:
        return
    target = min(revision or last[0].originator_version, last[0].originator_version)
    snapshots = list(fleet.snapshots.get(aggregate_id, desc=True, limit=1, lte=target))
    start = snapshots[0].originator_version if snapshots else 0
    for version in range(start - start % SNAPSHOT_INTERVAL + SNAPSHOT_INTERVAL, target + 1, SNAPSHOT_INTERVAL):
        try:
            fleet.take_snapshot(aggregate_id, version=version)
        except IntegrityError:  # another auditor took it meanwhile
            pass
