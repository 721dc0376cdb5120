"""The port through which the broker's auth backend learns which devices may connect."""

from __future__ import annotations

import threading
import time
from typing import Iterable, Protocol, runtime_checkable


@runtime_checkable
class DeviceDirectory(Protocol):
    """Answers whether a device id is currently registered (and so may hold a broker connection)."""

    def is_registered(self, device_id: str) -> bool: ...

    def password_hash(self, device_id: str) -> str | None:
        """The broker-password hash of a password-login device; None for certificate-only devices."""


class InMemoryDeviceDirectory:
    """A thread-safe set of registered device ids, for tests and single-process setups."""

    def __init__(self, device_ids: Iterable[str] = ()):
        self._ids = set(device_ids)
        self._hashes: dict[str, str] = {}
        self._lock = threading.Lock()

    def register(self, device_id: str, password_hash: str | None = None) -> None:
        with self._lock:
            self._ids.add(device_id)
            if password_hash:
                self._hashes[device_id] = password_hash

    def unregister(self, device_id: str) -> None:
        with self._lock:
            self._ids.discard(device_id)
            self._hashes.pop(device_id, None)

    def password_hash(self, device_id: str) -> str | None:
        with self._lock:
            return self._hashes.get(device_id)

    def is_registered(self, device_id: str) -> bool:
        with self._lock:
            return device_id in self._ids



class FleetDirectory:
    """Answers from the DeviceFleet's log as it stands when the question arrives (write-side state), so a
    device unregistered a moment ago is refused however loaded the machine is; tailing the log in the
    background let one login through right after an unregistration.

    Each question costs one indexed read of the log's tail; questions that arrive while a read is running
    share the next one.
    """

    def __init__(self, fleet):
        from projections.registered_devices import RegisteredDevices
        self._registry = RegisteredDevices(fleet)  # never started: caught up on demand, under our lock
        self._lock = threading.Lock()
        self._fresh_since = 0
        self._registry.catch_up()

    def is_registered(self, device_id: str) -> bool:
        self._catch_up()
        return self._registry.is_registered(device_id)

    def password_hash(self, device_id: str) -> str | None:
        """Read as registrations are: a password rotated a moment ago is refused at the very next login."""
        self._catch_up()
        return self._registry.password_hash(device_id)

    def _catch_up(self) -> None:
        asked = time.monotonic_ns()
        with self._lock:
            if self._fresh_since < asked:  # no read started after this question arrived: read now
                started = time.monotonic_ns()
                self._registry.catch_up()
                self._fresh_since = started
