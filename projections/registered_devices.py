"""An in-memory read model of which device ids are registered, for the broker's auth backend.

The broker asks about a device several times per connect; a fleet reconnecting at once asks
thousands of times a second. A set kept current by tailing the DeviceFleet log (Registered,
Unregistered and BrokerPasswordSet only) answers in microseconds and keeps the read store out of the connect path.
"""

from __future__ import annotations

import logging
import threading

from eventsourcing.utils import get_topic

from commands.domain.devices import Device

log = logging.getLogger("iotcloud.projections.registered")
TOPICS = [get_topic(Device.Registered), get_topic(Device.Unregistered), get_topic(Device.BrokerPasswordSet)]
PAGE = 5000


class RegisteredDevices:
    """`is_registered(device_id)` from memory; `catch_up()` applies new registrations."""

    def __init__(self, fleet, poll_interval: float = 0.1):
        self._fleet = fleet
        self._poll_interval = poll_interval
        self._position = 0
        self._by_aggregate: dict[str, str] = {}
        self._registered: set[str] = set()
        self._password_hashes: dict[str, str] = {}  # device id -> hash, for devices registered for password login
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "RegisteredDevices":
        self.catch_up()  # answer nothing before the whole registry is known
        self._thread = threading.Thread(target=self._run, name="registered-devices", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def is_registered(self, device_id: str) -> bool:
        return device_id in self._registered

    def password_hash(self, device_id: str) -> str | None:
        """The current broker-password hash of a registered password-login device, else None."""
        return self._password_hashes.get(device_id)

    def catch_up(self) -> int:
        applied = 0
        while True:
            page = self._fleet.recorder.select_notifications(start=self._position + 1, limit=PAGE, topics=TOPICS)
            with self._lock:
                for notification in page:
                    event = self._fleet.mapper.to_domain_event(notification)
                    aggregate = str(event.originator_id)
                    if isinstance(event, Device.Registered):
                        self._by_aggregate[aggregate] = event.device_id
                        self._registered.add(event.device_id)
                    elif isinstance(event, Device.BrokerPasswordSet):
                        if aggregate in self._by_aggregate:
                            self._password_hashes[self._by_aggregate[aggregate]] = event.password_hash
                    else:
                        device_id = self._by_aggregate.pop(aggregate, "")
                        self._registered.discard(device_id)
                        self._password_hashes.pop(device_id, None)
                    self._position = notification.id
            applied += len(page)
            if len(page) < PAGE:
                return applied

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.catch_up()
            except Exception:  # noqa: BLE001 - keep answering from what we know; retry next tick
                log.exception("could not read the device registry")
