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


class CachedDeviceDirectory:
    """Remembers answers briefly: one connect asks user, vhost, resource and topic questions within
    milliseconds, and a fleet reconnecting at once would otherwise query the read store thousands of
    times a second. Short TTLs keep revocation prompt (the gateway also closes live connections)."""

    def __init__(self, directory: DeviceDirectory, positive_ttl: float = 0.5, negative_ttl: float = 0.25,
                 clock=None):
        import time
        self._directory = directory
        self._ttl = {True: positive_ttl, False: negative_ttl}
        self._clock = clock or time.monotonic
        self._answers: dict[str, tuple[bool, float]] = {}

    def is_registered(self, device_id: str) -> bool:
        now = self._clock()
        cached = self._answers.get(device_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        answer = bool(self._directory.is_registered(device_id))
        if len(self._answers) > 100_000:
            self._answers.clear()
        self._answers[device_id] = (answer, now + self._ttl[answer])
        return answer
