"""Device calls the API process sends itself: the short path.

One event in one commit records the call requested and sent (born sent); one publish takes it to the device; the device's
answer comes straight back on this process's queue; the caller is answered at once and the outcome
joins the next shared commit. Everything slower stays with the gateway: a line (device and api)
with queued work, a request the broker could not route (the device is offline or not subscribed
yet), or no broker connection hands the call over to it.

At most one call per device and api is in flight unless the device echoes correlation ids: a
second call waits here for the line (up to its timeout), then goes to the gateway. A line this
process queued work on (wait=false, handed over) is left to the gateway until that work ends.
Crash safety, step by step, is argued in docs/architecture.md.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from commands.device_control import DeviceControl
from commands.domain.device_commands import FAILED, SUCCEEDED, TIMED_OUT, DeviceCommand
from commands.latch import Latch
from gateways.devices.protocol import encode_request, read_answer
from gateways.http.outcomes import CommandOutcomes

log = logging.getLogger("iotcloud.http.direct")
DEFERRED_FOR = 3600.0  # seconds a line stays with the gateway if the outcome of its work is never heard


@dataclass(frozen=True, slots=True)
class Finished:
    command_id: str
    outcome: dict


@dataclass(frozen=True, slots=True)
class HandedOver:
    """Recorded, but the gateway takes it from here; wait for its outcome by command id."""
    command_id: str


class _Call:
    __slots__ = ("command_id", "key", "device_id", "done", "body", "returned", "published")

    def __init__(self, key, device_id: str):
        self.key, self.device_id = key, device_id
        self.command_id: str | None = None
        self.done = Latch()  # set on the link's thread, waited for by the call's request thread
        self.body: bytes | None = None
        self.returned = False
        self.published = False  # set on the link's thread: answers handled before it belong to no one here

    def mark_published(self) -> None:
        self.published = True


class DirectCalls:
    def __init__(self, control: DeviceControl, link: CommandOutcomes, name: str, open_lines=None, clock=time.time):
        """`open_lines()` lists (command id, device id, api) of calls an earlier run left unfinished:
        until it has answered once, every call takes the gateway's path."""
        self._control, self._link, self._name, self._clock = control, link, name, clock
        self._cond = threading.Condition()
        self._lines: dict[tuple[str, str], _Call] = {}
        self._by_id: dict[str, _Call] = {}
        self._correlated = 0
        self._deferred: dict[tuple[str, str], dict[str, float]] = {}  # line -> {command id: forget after}
        self._deferred_ids: dict[str, tuple[str, str]] = {}
        link.listen(self._answered, self._returned, self._settled)
        self._seeded = threading.Event()
        self._closed = threading.Event()
        if open_lines is None:
            self._seeded.set()
        else:
            threading.Thread(target=self._seed, args=(open_lines,), name="direct-calls-seed", daemon=True).start()

    def defer(self, device_id: str, api: str, command_id: str) -> None:
        """Work on this line went to the gateway: leave the line to it until that work ends."""
        with self._cond:
            self._deferred.setdefault((device_id, api), {})[command_id] = time.monotonic() + DEFERRED_FOR
            self._deferred_ids[command_id] = (device_id, api)

    def call(self, device: dict, api: str, params: dict | None, timeout: float | None,
             ttl: float | None) -> Finished | HandedOver | None:
        """Finished, HandedOver, or None when nothing was recorded and the gateway's path must be taken."""
        if not self._seeded.is_set():
            return None
        timeout, ttl = self._control.timing(timeout, ttl)
        correlate = bool(device.get("correlation_ids"))
        device_id = device["device_id"]
        call = self._take_line(device_id, api, correlate, timeout)
        if call is None:
            return None
        try:
            command = self._control.dispatch(device, api, params, timeout, ttl, self._name)
        except BaseException:
            self._release(call)
            raise
        command_id = call.command_id = str(command.id)
        with self._cond:
            self._by_id[command_id] = call
        try:
            self._link.publish_request(command_id, device_id, command.api,
                                       encode_request(command.params, command_id if correlate else None),
                                       command.timeout, call.mark_published)
        except Exception:  # noqa: BLE001 - not published: it was never delivered, the gateway sends it
            log.warning("could not publish a request; handing it to the gateway", exc_info=True)
            return self._hand_over(call, command, "not published: no broker connection")
        call.done.wait(max(0.0, command.answer_deadline - self._clock()))
        if call.returned:
            return self._hand_over(call, command, "unroutable")
        body = call.body
        if body is None:
            command.time_out()
            outcome = {"status": TIMED_OUT, "error": command.error}
        else:
            outcome = self._answer(command, body)
        self._record(command, call)
        self._release(call)
        return Finished(command_id, {"command_id": command_id, **outcome})

    def _seed(self, open_lines) -> None:
        """Leaves the lines with unfinished work from an earlier run to the gateway. Retried until the
        read store answers: without it a line's earlier work is unknown, so the short path stays shut."""
        backoff = 0.5
        while not self._closed.is_set():
            try:
                for command_id, device_id, api in open_lines():
                    self.defer(device_id, api, command_id)
                self._seeded.set()
                return
            except Exception:  # noqa: BLE001 - the read store is down or not up yet
                log.warning("cannot list unfinished calls yet; calls go through the gateway meanwhile",
                            exc_info=True)
                self._closed.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def close(self) -> None:
        self._closed.set()

    # -- the line ---------------------------------------------------------------------------------

    def _take_line(self, device_id: str, api: str, correlate: bool, wait: float) -> _Call | None:
        key = None if correlate else (device_id, api)
        call = _Call(key, device_id)
        with self._cond:
            if correlate:
                if self._is_deferred((device_id, api)):
                    return None
                self._correlated += 1
                return call
            give_up = time.monotonic() + wait
            while key in self._lines:
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    return None  # still busy: the gateway queues it (and expires it in time)
                self._cond.wait(remaining)
            if self._is_deferred(key):
                return None
            self._lines[key] = call
            return call

    def _is_deferred(self, key) -> bool:
        work = self._deferred.get(key)
        if not work:
            return False
        now = time.monotonic()
        for command_id in [c for c, until in work.items() if until <= now]:
            self._forget_deferred(command_id)
        return bool(self._deferred.get(key))

    def _release(self, call: _Call) -> None:
        with self._cond:
            if call.command_id is not None:
                self._by_id.pop(call.command_id, None)
            if call.key is None:
                self._correlated -= 1
            elif self._lines.get(call.key) is call:
                del self._lines[call.key]
                self._cond.notify_all()

    # -- outcomes ---------------------------------------------------------------------------------

    def _answer(self, command: DeviceCommand, body: bytes) -> dict:
        read = read_answer(body, command.api)
        read.decision(str(command.id)).carry_out(command)
        if read.refusal is not None:
            return {"status": FAILED, "error": read.refusal}
        return {"status": SUCCEEDED, "result": read.value}

    def _record(self, command: DeviceCommand, call: _Call) -> None:
        """Joins the next shared commit; if the line has work waiting at the gateway, wakes it after."""
        future = self._control.record_later(command)
        wake = call.key is not None and call.key in self._deferred
        future.add_done_callback(lambda done: self._recorded(done, call.command_id, wake))

    def _recorded(self, done, command_id: str, wake: bool) -> None:
        if done.exception() is not None:
            # The gateway's backstop (or another writer) recorded first: the store keeps that outcome.
            log.warning("could not record a call's outcome", extra={"command_id": command_id},
                        exc_info=done.exception())
        if wake:
            self._link.wake_gateway()

    def _hand_over(self, call: _Call, command: DeviceCommand, reason: str) -> HandedOver:
        """The request was never delivered: record it queued again and let the gateway send it
        (or expire it, if the device is offline and the call has no time-to-live)."""
        try:
            command.return_to_queue(reason)
            self._control.record(command)
            self.defer(call.device_id, command.api, call.command_id)
        finally:
            self._release(call)
        self._link.wake_gateway()
        return HandedOver(call.command_id)

    # -- from the link's thread -------------------------------------------------------------------

    def _answered(self, device_id: str, api: str, body: bytes) -> bool:
        """Whether the answer belongs to a call of ours that waits for it; the link passes any other on."""
        call = self._lines.get((device_id, api))
        if call is None and self._correlated:
            correlation_id = read_answer(body, api).correlation_id
            call = self._by_id.get(correlation_id) if correlation_id else None
            if call is not None and (call.key is not None or call.device_id != device_id):
                return False
        if call is not None and call.published and call.body is None and not call.done.is_set():
            call.body = body
            call.done.set()
            return True
        return False

    def _returned(self, command_id: str) -> None:
        call = self._by_id.get(command_id)
        if call is not None and not call.done.is_set():
            call.returned = True
            call.done.set()

    def _settled(self, command_id: str) -> None:
        if command_id in self._deferred_ids:
            with self._cond:
                self._forget_deferred(command_id)

    def _forget_deferred(self, command_id: str) -> None:
        key = self._deferred_ids.pop(command_id, None)
        work = self._deferred.get(key)
        if work is not None:
            work.pop(command_id, None)
            if not work:
                del self._deferred[key]
