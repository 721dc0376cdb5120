"""A device's events and its commands' events, in the order they happened, from the event store."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from commands.domain.device_commands import DeviceCommand
from commands.domain.devices import Device

REQUESTED = get_topic(DeviceCommand.Requested)


def stored_event(row: tuple) -> StoredEvent:
    notification_id, originator_id, version, topic, state = row
    return StoredEvent(originator_id=UUID(originator_id), originator_version=version, topic=topic, state=state)


def audit_line(app: Application, row: tuple) -> dict:
    """One event as auditors see it. Events stored before audit metadata existed carry no actor,
    correlation or causation id: those fields are null rather than guessed."""
    event = app.mapper.to_domain_event(stored_event(row))
    kind = type(event).__qualname__
    line = {"log": app.name, "position": row[0], "event": kind, "aggregate_id": str(event.originator_id),
            "revision": event.originator_version, "timestamp": event.timestamp.isoformat(),
            "actor": getattr(event, "actor", None), "correlation_id": getattr(event, "correlation_id", None),
            "causation_id": getattr(event, "causation_id", None)}
    if kind.startswith("DeviceCommand."):
        line["command_id"] = str(event.originator_id)
        if hasattr(event, "api"):
            line["api"] = event.api
        sent_by = getattr(event, "sent_by", None) or getattr(event, "gateway", None)  # born sent, or Sent
        if sent_by:
            line["sent_by"] = sent_by
    return line


def device_events(fleet: Application, control: Application, device_id: str) -> list[dict]:
    """Every event of the device (DeviceFleet log) and of the calls made to it (DeviceControl log),
    ordered by time; within one log, by position. The calls are found by a scan of the stored
    `Requested` events in SQL (the store has no index by device)."""
    lines = [audit_line(fleet, row) for row in
             fleet.recorder.positioned_events(Device.create_id(device_id).hex)]
    needle = f'"device_id":"{device_id}"'
    for command_id in control.recorder.originators_mentioning(REQUESTED, needle):
        rows = control.recorder.positioned_events(command_id)
        # The byte search is a filter; the decoded Requested event decides.
        if rows and control.mapper.to_domain_event(stored_event(rows[0])).device_id == device_id:
            lines += [audit_line(control, row) for row in rows]
    order = {fleet.name: 0, control.name: 1}
    lines.sort(key=lambda line: (line["timestamp"], order[line["log"]], line["position"]))
    return lines
