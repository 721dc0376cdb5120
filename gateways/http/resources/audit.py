"""/v1/audit: a device's events, the device as it was, and the event chain's integrity, read from the
event store. Auditors (the `auditor` role) may audit any device; an owner their own devices; anyone
else is refused with 403, whether the device exists or not (no probing for device ids)."""

from __future__ import annotations

import datetime as dt
import threading

from eventsourcing.application import AggregateNotFoundError

from commands.audit.integrity import verify_logs
from commands.audit.time_travel import device_at_revision, device_record, revision_at
from commands.audit.timeline import device_events
from commands.domain.device_ids import DEVICE_ID_SHAPE, is_device_id
from commands.domain.devices import Device
from commands.errors import DeviceNotFound, DomainError, ValidationFailed
from gateways.http.access import owner_or_role, require_role
from gateways.http.bodies import number_param
from gateways.http.openapi_schemas import NULLABLE_S, S, TIME, obj, ref

AUDITOR = "auditor"
MAX_REVISION = 10**9


class AuditBusy(DomainError):
    problem, status, title = "audit-busy", 429, "A verification of the whole store is already running"


class AuditedDevices:
    """Who may audit which device: looks the owner up in the event store, not a read model."""

    def __init__(self, fleet):
        self._fleet = fleet

    def check(self, req, device_id: str) -> None:
        if not is_device_id(device_id):
            raise ValidationFailed("device id must be 40 lowercase hex characters", field="device_id")
        try:
            owner = self._fleet.repository.get(Device.create_id(device_id)).owner
        except AggregateNotFoundError:
            owner = None  # refused like someone else's device, unless the caller is an auditor
        owner_or_role(req.context, owner, AUDITOR)
        if owner is None:
            raise DeviceNotFound(f"no device {device_id}")


class DeviceEvents:
    """GET /v1/audit/devices/{device_id}/events"""

    def __init__(self, fleet, control):
        self._fleet, self._control, self._devices = fleet, control, AuditedDevices(fleet)

    def on_get(self, req, resp, device_id):
        self._devices.check(req, device_id)
        resp.media = {"device_id": device_id, "events": device_events(self._fleet, self._control, device_id)}


class DeviceState:
    """GET /v1/audit/devices/{device_id}/state?at=<ISO time> | revision=<n> (neither: the latest)"""

    def __init__(self, fleet):
        self._fleet, self._devices = fleet, AuditedDevices(fleet)

    def on_get(self, req, resp, device_id):
        self._devices.check(req, device_id)
        at, revision = req.get_param("at"), number_param(req, "revision", None, 1, MAX_REVISION)
        if at is not None and revision is not None:
            raise ValidationFailed("give 'at' or 'revision', not both", field="at")
        if at is not None:
            revision = revision_at(self._fleet, device_id, parse_moment(at))
        resp.media = device_record(device_at_revision(self._fleet, device_id, revision))


class Verification:
    """GET /v1/audit/verify: every log walked against its chain and newest signed checkpoint
    (auditors only: it covers every user's events). One at a time per process: it reads the whole store."""

    def __init__(self, applications, checkpoints, public_key):
        self._applications, self._checkpoints, self._public_key = applications, checkpoints, public_key
        self._running = threading.Lock()

    def on_get(self, req, resp):
        require_role(req.context, AUDITOR)
        if not self._running.acquire(blocking=False):
            raise AuditBusy("another verification is running; retry when it ends")
        try:
            reports = verify_logs(self._applications, self._checkpoints, self._public_key)
        finally:
            self._running.release()
        resp.media = {"intact": all(r.broken is None for r in reports), "logs": [r.as_dict() for r in reports]}


def parse_moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("'at' must be an ISO 8601 date-time", field="at") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def routes(platform) -> list[tuple[str, object]]:
    fleet, control = platform.fleet, platform.control
    return [("/v1/audit/devices/{device_id}/events", DeviceEvents(fleet, control)),
            ("/v1/audit/devices/{device_id}/state", DeviceState(fleet)),
            ("/v1/audit/verify", Verification((platform.accounts, fleet, control), platform.audit_checkpoints,
                                              platform.platform_public_key))]


# -- OpenAPI -------------------------------------------------------------------------------------------

_BROKEN = obj(["kind", "position", "detail", "message"], kind={"enum": ["altered", "missing", "inserted",
                                                                        "reordered", "checkpoint"]},
              position={"type": "integer"}, event=S, aggregate_id=S, revision={"type": "integer"}, detail=S, message=S)
SCHEMAS = {
    "AuditEvent": obj(["log", "position", "event", "aggregate_id", "revision", "timestamp"],
                      log=S, position={"type": "integer"}, event=S, aggregate_id=S, revision={"type": "integer"},
                      timestamp=TIME, actor=NULLABLE_S, correlation_id=NULLABLE_S, causation_id=NULLABLE_S,
                      command_id=S, api=S, sent_by=S),
    "AuditEvents": obj(["device_id", "events"], device_id=S, events={"type": "array", "items": ref("AuditEvent")}),
    "AuditState": obj(["device_id", "owner", "name", "revision", "registered"], device_id=S, owner=S, name=S,
                      revision={"type": "integer"}, as_of=TIME, registered_at=TIME, registered={"type": "boolean"},
                      online={"type": "boolean"}, correlation_ids={"type": "boolean"},
                      certificate={"type": "object"}),
    "AuditVerification": obj(["intact", "logs"], intact={"type": "boolean"}, logs={"type": "array", "items": obj(
        ["log", "intact", "events", "head"], log=S, intact={"type": "boolean"}, events={"type": "integer"},
        head={"type": "integer"}, head_hash=S, checkpoint={"type": ["integer", "null"]},
        broken={"oneOf": [_BROKEN, {"type": "null"}]})}),
}
OPERATIONS = {
    ("/v1/audit/devices/{device_id}/events", "get"): (
        "audit", "A device's events and its calls' events from the event store, in order (auditors; owners for "
                 "their own devices)", None, {200: "AuditEvents"}, {400, 403, 404}),
    ("/v1/audit/devices/{device_id}/state", "get"): (
        "audit", "The device as it was at a moment (at) or revision, folded from the event store (auditors; "
                 "owners for their own devices)", None, {200: "AuditState"}, {400, 403, 404}),
    ("/v1/audit/verify", "get"): (
        "audit", "Walk every log's hash chain and its newest signed checkpoint (auditors)", None,
        {200: "AuditVerification"}, {403, 429}),
}
PARAMETERS = {
    "/v1/audit/devices/{device_id}/state": [
        {"name": "at", "in": "query", "schema": {"type": "string", "format": "date-time"},
         "description": "ISO 8601 moment (UTC without an offset); the last revision recorded by then"},
        {"name": "revision", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_REVISION}}],
}
DEVICE_ID = {"type": "string", "pattern": f"^{DEVICE_ID_SHAPE}$", "description": "device id"}
