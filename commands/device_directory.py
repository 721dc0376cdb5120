"""Which device a user's name refers to, remembered between calls and kept current by the fleet's log.

`owned_device` reads two aggregates (the name's claim and the device) from the event store: each
read is a catch-up query when the aggregate is cached and a snapshot-and-events load when it is
not. With calls spread over a fleet of thousands that was every call, at 0.6-1.9 ms of the API's
CPU (docs/benchmarks.md, issue 7 step 61). Its answer changes only when the fleet records a
registration, an unregistration or a change of a name's claim, never with presence, a reissued
certificate or a new broker password; so the directory remembers answers and forgets all of them
at once when the log shows any other event.

It hears of the log in two ways: synchronously, from this process's own saves (`DeviceFleet`
calls `forget` before its command returns, so an unregistration answered here is never looked up
from memory afterwards); and from the events other processes record, through `follow`, which reads
every event after the last one it read each time the store says something was committed
(PostgreSQL's notifications; polling elsewhere). While it cannot follow (at start, after a lost
connection or a failed read) it remembers nothing and every lookup reads the aggregates.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from commands.domain.devices import Device
from commands.fleet import DeviceFleet
from commands.owned_devices import owned_device

log = logging.getLogger("iotcloud.device_directory")

# Device events that leave the answer of owned_device as it was: those are most of the fleet's log.
UNCHANGED_BY = frozenset(f"{Device.__module__}:Device.{name}"
                         for name in ("Connected", "Disconnected", "CertificateReissued", "BrokerPasswordSet"))
REMEMBERED = 50_000  # answers kept; past that they are all forgotten at once (a lookup costs a millisecond)
PAGE = 500  # events read from the log per query while following it


class DeviceDirectory:
    def __init__(self, fleet: DeviceFleet, lookup: Callable[[DeviceFleet, str, str], dict] = owned_device):
        self._fleet, self._lookup = fleet, lookup
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], dict] = {}
        self._forgotten = 0     # how many times everything was forgotten: a lookup begun before one is not kept
        self._following = False  # remembering is allowed only while the log is followed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.position: int | None = None  # the last event of the fleet's log the follower has read
        fleet.saved_observers.append(self._saved)

    def get(self, owner: str, name: str) -> dict:
        """The registered device `owner` calls `name` (device id, owner, name, correlation); or DeviceNotFound."""
        key = (owner, name)
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                return known
            forgotten = self._forgotten
        device = self._lookup(self._fleet, owner, name)
        with self._lock:
            # A change recorded while the aggregates were read may not be in what they said: then it is
            # not kept (the follower forgot since), and the next lookup reads them again.
            if self._following and forgotten == self._forgotten:
                if len(self._known) >= REMEMBERED:
                    self._known.clear()
                self._known[key] = device
        return device

    def forget(self) -> None:
        with self._lock:
            self._known.clear()
            self._forgotten += 1

    @property
    def following(self) -> bool:
        return self._following

    def _saved(self, topics) -> None:
        if any(topic not in UNCHANGED_BY for topic in topics):
            self.forget()

    # -- following the log ------------------------------------------------------------------------

    def follow(self, wakeup_for: Callable[[threading.Event], object]) -> "DeviceDirectory":
        """Follows the fleet's log in a thread of its own. `wakeup_for(stop)` (projections.wakeup) makes what
        it waits on: `wait(None)` returns when something may have been committed (and at least every few
        seconds, or soon once `stop` is set), and `listening` says whether every commit is heard now."""
        wakeup = wakeup_for(self._stop)
        self._thread = threading.Thread(target=self._follow, args=(wakeup,), name="device-directory", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _follow(self, wakeup) -> None:
        recorder = self._fleet.recorder
        position = None
        try:
            while not self._stop.is_set():
                try:
                    if position is None:
                        position = recorder.max_notification_id() or 0
                    position, changed = self._read_from(recorder, position)
                except Exception:  # noqa: BLE001 - the store is down: remember nothing until it is back
                    log.warning("cannot read the fleet's log; device lookups read the event store meanwhile",
                                exc_info=True)
                    self._set_following(False)
                    position = None
                    self._stop.wait(1.0)
                    continue
                if changed:
                    self.forget()
                self._set_following(bool(wakeup.listening))
                self.position = position
                wakeup.wait(None)
        finally:
            self._set_following(False)
            wakeup.close()

    def _read_from(self, recorder, position: int) -> tuple[int, bool]:
        """Reads every event after `position`: (the last one read, whether any changes a lookup's answer)."""
        changed = False
        while True:
            page = recorder.select_notifications(start=position + 1, limit=PAGE)
            for notification in page:
                position = notification.id
                changed = changed or notification.topic not in UNCHANGED_BY
            if len(page) < PAGE:
                return position, changed

    def _set_following(self, following: bool) -> None:
        with self._lock:
            # Also when following begins: a lookup begun before may have read the aggregates before an
            # event that the follower's first position already lies past.
            if not following or not self._following:
                self._known.clear()
                self._forgotten += 1
            self._following = following
