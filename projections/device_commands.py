"""The commands read model: each device call with its current status, for callers and auditors."""

from __future__ import annotations

import datetime as dt
from functools import singledispatchmethod

from pymongo import ASCENDING, DESCENDING
from pymongo.collection import Collection

from commands.domain.device_commands import (EXPIRED, FAILED, QUEUED, SENT, SUCCEEDED, TIMED_OUT,
                                             DeviceCommand)
from projections.guarded import BatchWriter
from queries.read_models import COMMANDS


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


class DeviceCommandsProjection:
    """DeviceCommand events -> `commands_g<N>`, keyed by command id."""

    name = COMMANDS
    sources = ("DeviceControl",)

    def prepare(self, commands: Collection) -> None:
        commands.create_index([("owner", ASCENDING), ("requested_at", DESCENDING)])
        commands.create_index([("status", ASCENDING)])
        commands.create_index([("device_id", ASCENDING), ("requested_at", DESCENDING)])

    @singledispatchmethod
    def apply(self, event, position: int, commands: BatchWriter) -> None:
        """Other events are not shown here."""

    @apply.register
    def _(self, event: DeviceCommand.Requested, position: int, commands: BatchWriter) -> None:
        commands.set(str(event.originator_id), position, {
            "command_id": str(event.originator_id), "device_id": event.device_id, "owner": event.owner,
            "device_name": event.device_name, "api": event.api, "params": event.params, "status": QUEUED,
            "timeout": event.timeout, "expires_at": _at(event.expires_at), "requested_at": event.timestamp,
            "requested_by": event.actor, "correlation_id": event.correlation_id,
            "sent_at": None, "completed_at": None, "result": None, "error": None})

    @apply.register
    def _(self, event: DeviceCommand.Sent, position: int, commands: BatchWriter) -> None:
        commands.set(str(event.originator_id), position, {"status": SENT, "sent_at": _at(event.sent_at)})

    @apply.register
    def _(self, event: DeviceCommand.Succeeded, position: int, commands: BatchWriter) -> None:
        self._finish(commands, event, position, SUCCEEDED, result=event.value)

    @apply.register
    def _(self, event: DeviceCommand.AnswerRejected, position: int, commands: BatchWriter) -> None:
        self._finish(commands, event, position, FAILED, error=event.reason)

    @apply.register
    def _(self, event: DeviceCommand.Unrouted, position: int, commands: BatchWriter) -> None:
        commands.set(str(event.originator_id), position, {"status": QUEUED, "sent_at": None})

    @apply.register
    def _(self, event: DeviceCommand.TimedOut, position: int, commands: BatchWriter) -> None:
        self._finish(commands, event, position, TIMED_OUT, error="the device did not answer in time")

    @apply.register
    def _(self, event: DeviceCommand.Expired, position: int, commands: BatchWriter) -> None:
        self._finish(commands, event, position, EXPIRED, error=event.reason)

    @staticmethod
    def _finish(commands, event, position, status, result=None, error=None) -> None:
        commands.set(str(event.originator_id), position,
                    {"status": status, "result": result, "error": error, "completed_at": event.timestamp})
