"""The gateway's decisions: when to send a command, which command an answer belongs to, when a
command has timed out or expired. Transport-free: the broker adapter feeds it value objects.

At most one command per device and api is in flight for devices that cannot echo a correlation
id (libpyiotcloud devices answer on `server/<id>/<api>` only), so an answer always belongs to the
command in that slot; a correlated device may have any number in flight. A command is recorded as
Sent before it is published, so no gateway, restarted or concurrent, ever publishes it twice.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Callable

from commands.device_control import DeviceControl
from commands.device_decisions import Expire, MarkSent, RecordAnswer, RejectAnswer, ReturnToQueue, TimeOut
from commands.domain.device_commands import QUEUED, SENT, DeviceCommand
from gateways.devices.messages import CommandOutcome, DeviceAnswer, PresenceChange
from gateways.devices.protocol import encode_request, read_answer
from gateways.devices.tally import ANSWERED, FAILED, REJECTED, MessageTally
from gateways.devices.unclaimed import Unclaimed, UnclaimedAnswers, count_direct_answer

log = logging.getLogger("iotcloud.gateway")
UNROUTED_RETRY = 0.1  # seconds before a request the broker could not route is tried again
# An API process records the outcome of a call it sent itself; the gateway times such a call out only
# this long after its deadline, when the API evidently died before recording anything.
BACKSTOP_GRACE = 3.0


@dataclass
class Pending:
    command_id: str
    device_id: str
    api: str
    params: dict
    timeout: float
    queue_deadline: float
    correlate: bool
    expires_at: float


@dataclass
class InFlight:
    command_id: str
    device_id: str
    api: str
    deadline: float
    correlation_id: str | None
    pending: Pending | None = None
    direct: bool = False   # sent by an API process, which records its outcome
    claimed: bool = False  # its answer has arrived (direct calls: counted, recorded by the API)


def pending_from(command: DeviceCommand) -> Pending:
    requested = command.created_on.timestamp()
    # A command without a time-to-live may still wait its timeout for a busy slot of an online device.
    return Pending(str(command.id), command.device_id, command.api, command.params, command.timeout,
                   max(command.expires_at, requested + command.timeout), command.correlate, command.expires_at)


class Dispatcher:
    """Owns in-flight slots, per-device queues and deadlines; records every decision as an event."""

    def __init__(self, control: DeviceControl, publish: Callable[[str, str, str, bytes, float], None],
                 announce: Callable[[CommandOutcome], None], record_presence: Callable[[PresenceChange], None],
                 clock=time.time, name: str = "gateway", tally: MessageTally | None = None):
        self._control = control
        self.tally = tally or MessageTally()
        self._publish = publish
        self._announce = announce
        self._record_presence = record_presence
        self._clock = clock
        self._name = name
        self._connections: dict[str, set[str]] = defaultdict(set)
        self._waiting: dict[str, deque[Pending]] = {}
        self._slots: dict[tuple[str, str], InFlight] = {}
        self._by_correlation: dict[str, InFlight] = {}
        self._in_flight: dict[str, InFlight] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._retry_at: dict[str, float] = {}
        self._unclaimed = UnclaimedAnswers(self.tally)
        self.known: set[str] = set()

    # -- inputs ---------------------------------------------------------------------------------

    def assume_online(self, device_ids) -> None:
        """Seeds presence at start-up (from the broker's connection list or the read model)."""
        for device_id in device_ids:
            self._connections[device_id].add("assumed")

    def requested(self, commands: list[DeviceCommand]) -> None:
        touched = set()
        for command in commands:
            key = str(command.id)
            if key in self.known:
                continue
            self.known.add(key)
            if command.status == QUEUED:
                self._queue(command.device_id).append(pending_from(command))
                touched.add(command.device_id)
            elif command.status == SENT:
                # Sent by an earlier run or by an API process: keep waiting for its answer, never send it again.
                self._await(command)
        self._pump(touched)

    def sent_elsewhere(self, command: DeviceCommand) -> None:
        """An API process sent a command itself (read from the log): its slot is taken until the
        command ends; the API records the outcome, the gateway only backs it up."""
        key = str(command.id)
        if command.sent_by == self._name or key in self._in_flight or command.sent_at is None:
            return
        self.known.add(key)
        queue = self._waiting.get(command.device_id)
        if queue is not None:
            self._keep(command.device_id, deque(p for p in queue if p.command_id != key))
        self._await(command)

    def _await(self, command: DeviceCommand) -> None:
        """Holds the slot of a command sent already. One an API process sent is the API's to record:
        the gateway times it out only BACKSTOP_GRACE after its deadline, and counts its answer."""
        key = str(command.id)
        direct = bool(command.sent_by) and command.sent_by != self._name
        deadline = (command.sent_at or self._clock()) + command.timeout + (BACKSTOP_GRACE if direct else 0)
        flight = InFlight(key, command.device_id, command.api, deadline, key if command.correlate else None,
                          pending_from(command), direct=direct)
        self._track(flight)
        if direct:
            self._claim(flight)

    def unrouted_elsewhere(self, command_id: str) -> None:
        """An API process was handed its request back by the broker: the gateway queues it now."""
        flight = self._in_flight.get(command_id)
        if flight is not None and flight.direct and flight.pending is not None:
            self._untrack(flight)
            self._queue(flight.device_id).appendleft(flight.pending)
            self._pump({flight.device_id})

    def ended(self, command_id: str, device_id: str) -> None:
        """A command the log shows finished (by an API process or another gateway): frees its slot."""
        if command_id not in self.known:
            return
        self.known.discard(command_id)
        flight = self._in_flight.get(command_id)
        if flight is not None:
            self._untrack(flight)
            self._pump({device_id})
            return
        queue = self._waiting.get(device_id)
        if queue is not None:
            self._keep(device_id, deque(p for p in queue if p.command_id != command_id))

    def answered(self, answers: list[DeviceAnswer]) -> None:
        """Whatever one answer holds costs only that answer: a malformed one fails its call (or is
        dropped), an exception is logged and the answer dropped; every answer is counted."""
        changes, freed = [], set()
        for answer in answers:
            try:
                change = self._match(answer)
            except Exception:  # noqa: BLE001 - one device message must never stop the loop
                log.exception("could not handle a device answer", extra={"device_id": answer.device_id,
                                                                          "api": answer.api})
                self.tally.count(answer.device_id, FAILED, "handling it raised")
                continue
            if change is not None:
                changes.append(change)
                freed.add(answer.device_id)
        self._record_answers(changes)
        self._pump(freed)

    def _match(self, answer: DeviceAnswer) -> RecordAnswer | RejectAnswer | None:
        """The change an answer makes to the call it belongs to, or None (counted) when it has none.
        A malformed answer can only belong to the call on its slot: its correlation id is unreadable."""
        read = read_answer(answer.payload, answer.api)
        flight = (self._by_correlation.get(read.correlation_id) if read.correlation_id
                  else self._slots.get((answer.device_id, answer.api)))
        if flight is None or flight.device_id != answer.device_id:
            self._unclaimed.hold(Unclaimed(answer.device_id, answer.api, read.correlation_id, read.refusal,
                                           answer.received_at))
            return None
        if flight.direct:
            self._count_direct(flight, read.refusal)
            return None
        self._untrack(flight)
        self.tally.count(answer.device_id, REJECTED if read.refusal else ANSWERED, read.refusal or "")
        return read.decision(flight.command_id)

    def _record_answers(self, changes) -> None:
        """Records answers in one transaction; if that fails, one by one, so an answer the store
        cannot take fails its own call and no other. When the store takes nothing at all the error
        propagates: the answers stay unacknowledged and the broker delivers them again."""
        try:
            self._apply_and_announce(changes)
            return
        except Exception:  # noqa: BLE001 - retried alone below; a dead store raises there again
            if len(changes) > 1:
                log.warning("recording %d answers together failed; recording them one by one", len(changes))
        for decision in changes:
            self._control.forget(decision.command_id)  # a failed save leaves the cached command half-changed
            try:
                self._apply_and_announce([decision])
            except Exception:  # noqa: BLE001
                log.exception("could not record an answer; failing its call", extra={"command_id": decision.command_id})
                self._control.forget(decision.command_id)
                self._apply_and_announce([RejectAnswer(decision.command_id, "the answer could not be recorded", "")])

    def presence(self, change: PresenceChange) -> None:
        connections = self._connections[change.device_id]
        connections.discard("assumed")
        was_online = bool(connections)
        if change.online:
            connections.add(change.connection)
        else:
            connections.discard(change.connection)
        if bool(connections) != was_online:
            self._record_presence(PresenceChange(change.device_id, change.connection, bool(connections),
                                                 change.protocol, change.at))
        if connections:
            self._pump({change.device_id})

    def reconcile(self, listed: dict[str, list[str]], at: float) -> None:
        """Adds connections the broker lists that we never heard of (their connection.created event was
        published while we were reconnecting to the broker)."""
        for device_id, names in listed.items():
            known = self._connections.get(device_id, set())
            for name in names:
                if name not in known:
                    self.presence(PresenceChange(device_id, name, True, "", at))

    def tick(self) -> None:
        """Times out unanswered commands, retries unrouted ones, expires queued ones past their deadline."""
        now = self._clock()
        self._unclaimed.expire(now)
        due = [device for device, at in self._retry_at.items() if at <= now]
        for device in due:
            del self._retry_at[device]
        if due:
            self._pump(due)
        changes = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, command_id = heapq.heappop(self._deadlines)
            flight = self._in_flight.get(command_id)
            if flight is not None and flight.deadline <= now:
                self._untrack(flight)
                changes.append(TimeOut(command_id))
                self._pump({flight.device_id})
        for device_id, queue in list(self._waiting.items()):  # only devices with queued commands
            expired = [p for p in queue if p.queue_deadline <= now]
            if not expired:
                continue
            reason = "the device stayed offline" if not self.is_online(device_id) else "waited too long to be sent"
            changes += [Expire(p.command_id, reason) for p in expired]
            self._keep(device_id, deque(p for p in queue if p.queue_deadline > now))
        self._apply_and_announce(changes)

    def next_deadline(self) -> float | None:
        queued = [p.queue_deadline for q in self._waiting.values() for p in q]
        candidates = queued + list(self._retry_at.values()) + ([self._deadlines[0][0]] if self._deadlines else [])
        return min(candidates) if candidates else None

    def is_online(self, device_id: str) -> bool:
        return bool(self._connections.get(device_id))

    def online_devices(self) -> int:
        """How many devices have a live connection (read by the metrics scrape, from another thread:
        a snapshot of the values, taken without iterating the live dict in Python)."""
        return sum(1 for connections in list(self._connections.values()) if connections)

    # -- internals ------------------------------------------------------------------------------

    def _pump(self, device_ids) -> None:
        now = self._clock()
        to_send: list[Pending] = []
        changes = []
        for device_id in device_ids:
            if not self.is_online(device_id):
                # Offline: commands without a time-to-live fail now, the others wait for a connect.
                queue = self._waiting.get(device_id, deque())
                changes += [Expire(p.command_id, "the device is offline") for p in queue if p.expires_at <= now]
                self._keep(device_id, deque(p for p in queue if p.expires_at > now))
                continue
            if self._retry_at.get(device_id, 0) > now:
                continue  # an unrouted request waits for the device to finish subscribing
            queue, kept, taken = self._waiting.get(device_id, deque()), deque(), set()
            while queue:
                pending = queue.popleft()
                if pending.queue_deadline <= now:
                    changes.append(Expire(pending.command_id, "waited too long to be sent"))
                elif pending.correlate or ((device_id, pending.api) not in self._slots and pending.api not in taken):
                    if not pending.correlate:
                        taken.add(pending.api)
                    to_send.append(pending)
                else:
                    kept.append(pending)
            self._keep(device_id, kept)
        if to_send:
            self._send(to_send, now)
        if changes:
            self._apply_and_announce(changes)

    def _keep(self, device_id: str, queue: deque) -> None:
        """Stores a device's remaining queue; devices with nothing queued are not kept at all."""
        if queue:
            self._waiting[device_id] = queue
        else:
            self._waiting.pop(device_id, None)

    def _queue(self, device_id: str) -> deque:
        return self._waiting.setdefault(device_id, deque())

    def _send(self, batch: list[Pending], now: float) -> None:
        for pending in batch:  # reserve slots before the save so answers cannot race the publish
            self._track(InFlight(pending.command_id, pending.device_id, pending.api, now + pending.timeout,
                                 pending.command_id if pending.correlate else None, pending))
        saved = self._control.decide([MarkSent(p.command_id, now, self._name) for p in batch])
        saved_ids = {str(c.id) for c in saved}
        for pending in batch:
            if pending.command_id not in saved_ids:
                self._untrack(self._in_flight[pending.command_id])  # someone else recorded it; not ours
                continue
            payload = encode_request(pending.params, pending.command_id if pending.correlate else None)
            try:
                self._publish(pending.command_id, pending.device_id, pending.api, payload, pending.timeout)
            except Exception:  # noqa: BLE001 - the command stays Sent and times out; never resent
                log.exception("publish failed", extra={"command_id": pending.command_id})

    def unrouted(self, command_ids: list[str]) -> None:
        """The broker handed these back: the device was connected but not subscribed yet (or just
        left). Nothing was delivered, so they are queued again and retried shortly."""
        now, changes = self._clock(), []
        for command_id in command_ids:
            flight = self._in_flight.get(command_id)
            if flight is None or flight.pending is None:
                continue
            self._untrack(flight)
            changes.append(ReturnToQueue(command_id))
            self._queue(flight.device_id).appendleft(flight.pending)
            self._retry_at[flight.device_id] = now + UNROUTED_RETRY
        if changes:
            self._control.decide(changes)

    def _count_direct(self, flight: InFlight, refusal: str | None) -> None:
        count_direct_answer(self.tally, flight.device_id, flight.api, not flight.claimed, refusal)
        flight.claimed = True

    def _claim(self, flight: InFlight) -> None:
        """Gives a direct call the answer that arrived before the log told us of the call."""
        answer = self._unclaimed.claim(flight.device_id, flight.api, flight.correlation_id)
        if answer is not None:
            self._count_direct(flight, answer.refusal)

    def _track(self, flight: InFlight) -> None:
        self._in_flight[flight.command_id] = flight
        if flight.correlation_id:
            self._by_correlation[flight.correlation_id] = flight
        else:
            self._slots[(flight.device_id, flight.api)] = flight
        heapq.heappush(self._deadlines, (flight.deadline, flight.command_id))

    def _untrack(self, flight: InFlight) -> None:
        self._in_flight.pop(flight.command_id, None)
        if flight.correlation_id:
            self._by_correlation.pop(flight.correlation_id, None)
        elif self._slots.get((flight.device_id, flight.api)) is flight:
            del self._slots[(flight.device_id, flight.api)]

    def _apply_and_announce(self, changes) -> None:
        if not changes:
            return
        for command in self._control.decide(changes):
            if command.is_terminal:
                self.known.discard(str(command.id))
            self._announce(CommandOutcome(str(command.id), command.status, command.result, command.error))

