"""The history read model: one document per device exchange (a call and its answer) and per device
event worth showing (registration, presence changes, certificate reissue, unregistration).

A call's document is also where its status is read (`GET /v1/commands/{id}`, queries/device_commands.py)
and where the gateway finds the calls left open by an earlier run: one document per call in all.

Documents are ordered by `key` = "<microseconds since the epoch, 17 digits>:<_id>": unique, and
sorting it is sorting by time, so one index serves newest-first paging, time ranges and cursors.
Events that do not carry what a document shows (a Succeeded has no request time, a Connected no
owner) find it in a bounded memory of earlier events, else in the document those wrote; the
result depends on the events only, so a rebuild reproduces the live read model exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import OrderedDict
from functools import singledispatchmethod

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from commands.domain.device_commands import (EXPIRED, FAILED, QUEUED, SENT, SUCCEEDED, TIMED_OUT, TIMEOUT_ERROR,
                                             DeviceCommand)
from commands.domain.devices import Device
from projections.guarded import BatchWriter
from queries.device_commands import CALL as COMMAND, OPEN_STATES
from queries.history import key_bound
from queries.read_models import HISTORY

TO_DEVICE, FROM_DEVICE = "to_device", "from_device"
LIFECYCLE = ("registered", "certificate_reissued", "broker_password_set", "unregistered")  # kept whatever the retention
NAIVE_EPOCH = dt.datetime(1970, 1, 1)  # UTC
REMEMBERED = 200_000  # request times and device names kept in memory (a miss costs one find_one)

# (fields, name) of every index: each query of queries/history.py is served by one of them. The
# `(owner,) field ASC, key DESC` ones also serve the pages sorted by that field (queries.history.Sort):
# ascending with ties newest first, or walked backwards for the descending sort.
INDEXES = [
    ([("key", DESCENDING)], "key"),
    ([("owner", ASCENDING), ("key", DESCENDING)], "owner_key"),
    ([("owner", ASCENDING), ("device_name", ASCENDING), ("key", DESCENDING)], "owner_device_key"),
    ([("owner", ASCENDING), ("api", ASCENDING), ("key", DESCENDING)], "owner_api_key"),
    ([("owner", ASCENDING), ("state", ASCENDING), ("key", DESCENDING)], "owner_state_key"),
    ([("owner", ASCENDING), ("direction", ASCENDING), ("key", DESCENDING)], "owner_direction_key"),
    ([("device_id", ASCENDING), ("key", DESCENDING)], "device_key"),
    ([("api", ASCENDING), ("key", DESCENDING)], "api_key"),
    ([("state", ASCENDING), ("key", DESCENDING)], "state_key"),
    ([("event", ASCENDING), ("key", DESCENDING)], "event_key"),
    ([("direction", ASCENDING), ("key", DESCENDING)], "direction_key"),
    ([("device_name", ASCENDING), ("key", DESCENDING)], "device_name_key"),
    ([("latency_ms", ASCENDING), ("key", DESCENDING)], "latency_key"),
    ([("owner", ASCENDING), ("latency_ms", ASCENDING), ("key", DESCENDING)], "owner_latency_key"),
]


def _us(epoch: float) -> int:
    return round(epoch * 1_000_000)


def history_key(epoch: float, doc_id: str) -> str:
    return f"{_us(epoch):017d}:{doc_id}"


def _at(epoch: float) -> str:
    """Times are ISO 8601 UTC text with microseconds ("2026-11-28T19:26:17.002000Z"): they sort as
    text, and nx-27017 stores a BSON date given to `$set` on an existing document as a naive string
    but one in an inserted document as a date, so dates would differ between a live read model and
    a rebuild that merged the same events into fewer writes."""
    moment = NAIVE_EPOCH + dt.timedelta(microseconds=_us(epoch))  # the very microsecond its key holds
    return moment.isoformat(timespec="microseconds") + "Z"


def _payload(value) -> str:
    """The text as it went over the wire (json.dumps defaults, as the device protocol writes it)."""
    return value if isinstance(value, str) else json.dumps(value)


class _Memory(OrderedDict):
    def remember(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > REMEMBERED:
            self.popitem(last=False)


class HistoryProjection:
    """DeviceCommand.* and Device.* -> `history_g<N>`."""

    name = HISTORY
    sources = ("DeviceFleet", "DeviceControl")

    def __init__(self, retention_days: float = 0.0, clock=time.time):
        self.retention_days = retention_days
        self._clock = clock
        self._requested: _Memory = _Memory()  # command id -> requested epoch
        self._devices: _Memory = _Memory()    # device aggregate id -> (device id, owner, name)

    @staticmethod
    def holdable(fields: dict) -> bool:
        """A new call's document while the call is open: under load the projector holds its write back
        for the outcome (projections.runner.step_source), so a call is written once instead of twice."""
        return fields.get("event") == COMMAND and fields.get("state") in OPEN_STATES

    def prepare(self, history: Collection) -> None:
        for fields, name in INDEXES:
            history.create_index(fields, name=name)

    def trim(self, history: Collection) -> int:
        """Deletes calls and presence changes older than the retention (never lifecycle documents,
        which name the device for later events, nor calls still open, which the gateway recovers
        from here); the event store keeps everything."""
        if not self.retention_days:
            return 0
        cutoff = key_bound(dt.datetime.fromtimestamp(self._clock() - self.retention_days * 86400, dt.timezone.utc))
        return history.delete_many({"key": {"$lt": cutoff}, "event": {"$nin": list(LIFECYCLE)},
                                    "state": {"$nin": list(OPEN_STATES)}}).deleted_count

    @singledispatchmethod
    def apply(self, event, position: int, history: BatchWriter) -> None:
        """Sessions, claims and other events are not history."""

    # -- device exchanges ------------------------------------------------------------------------

    @apply.register
    def _(self, event: DeviceCommand.Requested, position: int, history: BatchWriter) -> None:
        command_id = str(event.originator_id)
        requested = event.timestamp.timestamp()
        sent_at = getattr(event, "sent_at", None)  # born sent (the API's short path); absent from older events
        self._requested.remember(command_id, _us(requested))
        history.set(command_id, position, {
            "key": history_key(requested, command_id), "event": COMMAND, "direction": TO_DEVICE,
            "command_id": command_id, "device_id": event.device_id, "owner": event.owner,
            "device_name": event.device_name, "api": event.api, "request": event.params,
            "request_payload": _payload(event.params), "state": QUEUED if sent_at is None else SENT,
            "timeout": event.timeout,
            "actor": event.actor, "correlation_id": event.correlation_id, "at": _at(requested),
            "requested_at": _at(requested), "expires_at": _at(event.expires_at),
            "sent_at": None if sent_at is None else _at(sent_at),
            "completed_at": None, "answer": None,
            "answer_payload": None, "result": None, "error": None, "latency_ms": None}, creates=True)

    @apply.register
    def _(self, event: DeviceCommand.Sent, position: int, history: BatchWriter) -> None:
        history.set(str(event.originator_id), position, {"state": SENT, "sent_at": _at(event.sent_at)})

    @apply.register
    def _(self, event: DeviceCommand.Unrouted, position: int, history: BatchWriter) -> None:
        history.set(str(event.originator_id), position, {"state": QUEUED, "sent_at": None})

    @apply.register
    def _(self, event: DeviceCommand.Succeeded, position: int, history: BatchWriter) -> None:
        self._finish(event, position, history, SUCCEEDED, result=event.value, answer=event.answer,
                     answer_payload=_payload(event.answer))

    @apply.register
    def _(self, event: DeviceCommand.AnswerRejected, position: int, history: BatchWriter) -> None:
        self._finish(event, position, history, FAILED, error=event.reason, answer_payload=event.payload)

    @apply.register
    def _(self, event: DeviceCommand.TimedOut, position: int, history: BatchWriter) -> None:
        self._finish(event, position, history, TIMED_OUT, error=TIMEOUT_ERROR)

    @apply.register
    def _(self, event: DeviceCommand.Expired, position: int, history: BatchWriter) -> None:
        self._finish(event, position, history, EXPIRED, error=event.reason)

    def _finish(self, event, position, history: BatchWriter, state: str, result=None, error=None, answer=None,
                answer_payload=None) -> None:
        command_id = str(event.originator_id)
        requested = self._requested.pop(command_id, None)
        if requested is None:  # requested before this process started: its key holds the time exactly
            doc = history.collection.find_one({"_id": command_id}, {"key": 1})
            requested = int(doc["key"].partition(":")[0]) if doc and doc.get("key") else None
        completed = _us(event.timestamp.timestamp())
        history.set(command_id, position, {
            "state": state, "result": result, "error": error, "answer": answer, "answer_payload": answer_payload,
            "completed_at": _at(event.timestamp.timestamp()),
            "latency_ms": None if requested is None else (completed - requested) / 1000})

    # -- device events ---------------------------------------------------------------------------

    @apply.register
    def _(self, event: Device.Registered, position: int, history: BatchWriter) -> None:
        self._devices.remember(str(event.originator_id), (event.device_id, event.owner, event.name))
        self._device_event(event, position, history, "registered", event.timestamp.timestamp(), "registered")

    @apply.register
    def _(self, event: Device.CertificateReissued, position: int, history: BatchWriter) -> None:
        self._device_event(event, position, history, "certificate_reissued", event.timestamp.timestamp(),
                           "reissued", {"serial": event.certificate.get("serial"),
                                        "not_after": event.certificate.get("not_after")})

    @apply.register
    def _(self, event: Device.BrokerPasswordSet, position: int, history: BatchWriter) -> None:
        # That it happened, never the hash.
        self._device_event(event, position, history, "broker_password_set", event.timestamp.timestamp(),
                           "password_set")

    @apply.register
    def _(self, event: Device.Unregistered, position: int, history: BatchWriter) -> None:
        self._device_event(event, position, history, "unregistered", event.timestamp.timestamp(), "unregistered")

    @apply.register
    def _(self, event: Device.Connected, position: int, history: BatchWriter) -> None:
        self._device_event(event, position, history, "connected", event.at, "online", {"protocol": event.protocol},
                           FROM_DEVICE)

    @apply.register
    def _(self, event: Device.Disconnected, position: int, history: BatchWriter) -> None:
        self._device_event(event, position, history, "disconnected", event.at, "offline", None, FROM_DEVICE)

    def _device_event(self, event, position, history: BatchWriter, name: str, at: float, state: str,
                      detail: dict | None = None, direction: str | None = None) -> None:
        aggregate = str(event.originator_id)
        device = self._devices.get(aggregate) or self._registration(history, aggregate)
        if device is None:
            return  # the registration is unknown: nothing to name the device by (never happens in order)
        device_id, owner, device_name = device
        doc_id = f"{aggregate}:{event.originator_version}"
        history.set(doc_id, position, {
            "key": history_key(at, doc_id), "event": name, "direction": direction, "device_id": device_id,
            "owner": owner, "device_name": device_name, "api": None, "state": state, "detail": detail,
            "actor": event.actor, "correlation_id": event.correlation_id, "at": _at(at)}, creates=True)

    def _registration(self, history: BatchWriter, aggregate: str):
        doc = history.collection.find_one({"_id": f"{aggregate}:1"}, {"device_id": 1, "owner": 1, "device_name": 1})
        if doc is None:
            return None
        device = (doc["device_id"], doc["owner"], doc["device_name"])
        self._devices.remember(aggregate, device)
        return device

