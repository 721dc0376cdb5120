"""What a gateway or API decides about a command, as values: each names the intent it carries out
on the DeviceCommand aggregate, which refuses it if the command has moved on."""

from __future__ import annotations

from dataclasses import dataclass

from commands.domain.device_commands import DeviceCommand


@dataclass(frozen=True, slots=True)
class MarkSent:
    command_id: str
    at: float
    by: str

    def carry_out(self, command: DeviceCommand) -> None:
        command.mark_sent(self.at, self.by)


@dataclass(frozen=True, slots=True)
class RecordAnswer:
    command_id: str
    value: object
    answer: dict

    def carry_out(self, command: DeviceCommand) -> None:
        command.record_answer(self.value, self.answer)


@dataclass(frozen=True, slots=True)
class RejectAnswer:
    command_id: str
    reason: str
    payload: str

    def carry_out(self, command: DeviceCommand) -> None:
        command.reject_answer(self.reason, self.payload)


@dataclass(frozen=True, slots=True)
class ReturnToQueue:
    command_id: str
    reason: str = "unroutable"

    def carry_out(self, command: DeviceCommand) -> None:
        command.return_to_queue(self.reason)


@dataclass(frozen=True, slots=True)
class TimeOut:
    command_id: str

    def carry_out(self, command: DeviceCommand) -> None:
        command.time_out()


@dataclass(frozen=True, slots=True)
class Expire:
    command_id: str
    reason: str

    def carry_out(self, command: DeviceCommand) -> None:
        command.expire(self.reason)


Decision = MarkSent | RecordAnswer | RejectAnswer | ReturnToQueue | TimeOut | Expire
