"""DeviceControl: the write side of device calls (requested, sent, answered, timed out, expired).

Gateways and the API say what they decided as values (commands.device_decisions); the
DeviceCommand aggregate carries each out or refuses it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from concurrent.futures import Future
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError

from commands.device_apis import device_api
from commands.device_decisions import Decision
from commands.domain.device_commands import DeviceCommand, IllegalTransition
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
        self._group = GroupCommit(self._save_events)

    def _save_events(self, *events) -> list:
        """`save` for the events the group commit collected from our own aggregates, without
        eventsourcing's check of each object against a runtime Protocol: on Python 3.11 that
        `isinstance` walks the protocol's attributes every time, about 9 µs an event and 3-4 % of the
        API's CPU per call. No aggregates are passed, so there is nothing to cache or snapshot."""
        processing_event = ProcessingEvent()
        processing_event.events.extend(events)
        recordings = self._record(processing_event)
        self._notify(recordings)
        return recordings

    def request(self, device: dict, api: str, params: dict | None, timeout: float | None = None,
                ttl: float | None = None) -> RequestedCommand:
        """`device` is the caller's device as the read model shows it (id, owner, name, correlation)."""
        command = self._new_command(device, api, params, timeout, ttl)
        return RequestedCommand(str(command.id), self._group.save(command))

    def _new_command(self, device: dict, api: str, params, timeout, ttl, sent_by: str | None = None) -> DeviceCommand:
        spec = device_api(api)
        normalised = spec.normalise(params)
        timeout, ttl = self.timing(timeout, ttl)
        now = self._clock()
        return DeviceCommand(device_id=device["device_id"], owner=device["owner"], device_name=device["name"],
                             api=spec.name, params=normalised, timeout=timeout, expires_at=now + ttl,
                             correlate=bool(device.get("correlation_ids")),
                             sent_at=None if sent_by is None else now, sent_by=sent_by)

    def timing(self, timeout, ttl) -> tuple[float, float]:
        """A caller's timeout and time-to-live (None: the defaults) as checked seconds; a bad one is
        refused (ValidationFailed) before anything is recorded, waited for or sent."""
        return (_bounded("timeout", self.default_timeout if timeout is None else timeout, 0.1, MAX_TIMEOUT),
                _bounded("ttl", 0 if ttl is None else ttl, 0, MAX_TTL))

    def command(self, command_id) -> DeviceCommand:
        try:
            return self.repository.get(as_uuid(command_id))
        except (AggregateNotFoundError, ValueError):
            raise CommandNotFound(f"no command {command_id}") from None

    def dispatch(self, device: dict, api: str, params: dict | None, timeout: float | None, ttl: float | None,
                 by: str) -> DeviceCommand:
        """Requests a call recorded as sent by `by` in the same event, for a caller that publishes it
        itself right after (the API on the short path). Returns the saved command."""
        command = self._new_command(device, api, params, timeout, ttl, sent_by=by)
        self._group.save(command)
        return command

    def record(self, command: DeviceCommand) -> int:
        """Saves what was decided on `command` now (in the next shared commit); returns its position."""
        return self._group.save(command)

    def record_later(self, command: DeviceCommand) -> Future:
        """Queues what was decided on `command` (already carried out on it) for the next shared
        commit and returns at once; the future fails with IntegrityError if someone recorded first."""
        return self._group.submit(command)

    def decide(self, decisions: list[Decision]) -> list[DeviceCommand]:
        """Carries out each decision on its command and saves all in one transaction; a decision the
        command refuses (it moved on) is skipped. Returns the commands changed.

        On a conflict (another process recorded something first) each decision is retried alone
        against the stored state, so a decision is never recorded twice.
        """
        loaded: dict = {}
        changed = list({id(c): c for c in (self._decided(d, loaded) for d in decisions) if c}.values())
        if not changed:
            return []
        try:
            self.save(*changed)
            return changed
        except IntegrityError:
            saved = []
            for decision in decisions:
                self.forget(decision.command_id)
                command = self._decided(decision, {})
                if command is None:
                    continue
                try:
                    self.save(command)
                    saved.append(command)
                except IntegrityError:
                    self.forget(decision.command_id)
            return saved

    def remember(self, command: DeviceCommand) -> None:
        """Seeds the aggregate cache (a gateway builds new commands from their Requested event)."""
        if self.repository.cache is not None:
            self.repository.cache.put(command.id, command)

    def forget(self, command_id) -> None:
        if self.repository.cache is not None:
            try:
                self.repository.cache.get(as_uuid(command_id), evict=True)
            except (KeyError, ValueError):
                pass

    def _decided(self, decision: Decision, loaded: dict) -> DeviceCommand | None:
        """The command after carrying out `decision`, or None if it refused (or does not exist);
        `loaded` holds the commands this batch already changed, so decisions on one command chain."""
        command = loaded.get(decision.command_id)
        if command is None:
            try:
                command = loaded[decision.command_id] = self.repository.get(as_uuid(decision.command_id))
            except (AggregateNotFoundError, ValueError):
                return None
        try:
            decision.carry_out(command)
        except IllegalTransition:
            return None
        return command


def as_uuid(value) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _bounded(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValidationFailed(f"'{name}' must be a number of seconds from {low:g} to {high:g}", field=name)
    return float(value)


class CommandNotFound(DomainError):
    problem, status, title = "command-not-found", 404, "No such command"
