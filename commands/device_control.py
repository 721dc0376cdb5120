"""DeviceControl: the write side of device calls (requested, sent, answered, timed out, expired)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError

from commands.device_apis import device_api
from commands.domain.device_commands import DeviceCommand
from commands.errors import DomainError, ValidationFailed
from commands.group_commit import GroupCommit

DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 60.0
MAX_TTL = 7 * 86400


@dataclass(frozen=True, slots=True)
class RequestedCommand:
    command_id: str
    position: int


class DeviceControl(Application):
    """Records device calls; gateways record what happened to them."""

    env = {"AGGREGATE_CACHE_MAXSIZE": "10000"}

    def __init__(self, *args, clock=time.time, default_timeout: float = DEFAULT_TIMEOUT, **kwargs):
        super().__init__(*args, **kwargs)
        self._clock = clock
        self.default_timeout = default_timeout
        self._group = GroupCommit(self.save)

    def request(self, device: dict, api: str, params: dict | None, timeout: float | None = None,
                ttl: float | None = None) -> RequestedCommand:
        """`device` is the caller's device as the read model shows it (id, owner, name, correlation)."""
        spec = device_api(api)
        normalised = spec.normalise(params)
        timeout = _bounded("timeout", self.default_timeout if timeout is None else timeout, 0.1, MAX_TIMEOUT)
        ttl = _bounded("ttl", 0 if ttl is None else ttl, 0, MAX_TTL)
        command = DeviceCommand(device_id=device["device_id"], owner=device["owner"], device_name=device["name"],
                                api=spec.name, params=normalised, timeout=timeout,
                                expires_at=self._clock() + ttl, correlate=bool(device.get("correlation_ids")))
        return RequestedCommand(str(command.id), self._group.save(command))

    def command(self, command_id) -> DeviceCommand:
        try:
            return self.repository.get(as_uuid(command_id))
        except (AggregateNotFoundError, ValueError):
            raise CommandNotFound(f"no command {command_id}") from None

    def apply(self, changes: list[tuple[object, Callable[[DeviceCommand], bool]]]) -> list[DeviceCommand]:
        """Applies each change (a function that mutates a command, or answers False to skip it) and
        saves all in one transaction; returns the commands changed.

        On a conflict (another gateway instance recorded something first) each change is retried
        alone against the stored state, so a decision is never recorded twice.
        """
        changed = [command for command in (self._changed(cid, change) for cid, change in changes) if command]
        if not changed:
            return []
        try:
            self.save(*changed)
            return changed
        except IntegrityError:
            saved = []
            for command_id, change in changes:
                self.forget(command_id)
                command = self._changed(command_id, change)
                if command is None:
                    continue
                try:
                    self.save(command)
                    saved.append(command)
                except IntegrityError:
                    continue
            return saved

    def remember(self, command: DeviceCommand) -> None:
        """Seeds the aggregate cache (a gateway builds new commands from their Requested event)."""
        if self.repository.cache is not None:
            self.repository.cache.put(command.id, command)

    def forget(self, command_id) -> None:
        if self.repository.cache is not None:
            try:
                self.repository.cache.get(as_uuid(command_id), evict=True)
            except KeyError:
                pass

    def _changed(self, command_id, change) -> DeviceCommand | None:
        try:
            command = self.repository.get(as_uuid(command_id))
        except (AggregateNotFoundError, ValueError):
            return None
        return command if change(command) else None


def as_uuid(value) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _bounded(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationFailed(f"'{name}' must be a number of seconds from {low:g} to {high:g}", field=name)
    return float(value)


class CommandNotFound(DomainError):
    problem, status, title = "command-not-found", 404, "No such command"
