"""The port through which the broker's auth backend learns which devices may connect."""

from __future__ import annotations

import threading
from typing import Iterable, Protocol, runtime_checkable


@runtime_checkable
class DeviceDirectory(Protocol):
    """Answers whether a device id is currently registered (and so may hold a broker connection)."""

    def is_registered(self, device_id: str) -> bool: ...


class InMemoryDeviceDirectory:
    """A thread-safe set of registered device ids, for tests and single-process setups."""

    def __init__(self, device_ids: Iterable[str] = ()):
        self._ids = set(device_ids)
        self._lock = threading.Lock()

    def register(self, device_id: str) -> None:
        with self._lock:
            self._ids.add(device_id)

    def unregister(self, device_id: str) -> None:
        with self._lock:
            self._ids.discard(device_id)

    def is_registered(self, device_id: str) -> bool:
        with self._lock:
            return device_id in self._ids

