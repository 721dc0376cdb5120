"""Device calls for both REST flavours: append the request, wake the gateway, wait for the outcome."""

from __future__ import annotations

import time
from dataclasses import dataclass

from commands.device_control import DeviceControl
from commands.domain.device_commands import EXPIRED, FAILED, SUCCEEDED, TIMED_OUT
from commands.errors import DeviceCallFailed, DeviceOffline, DeviceTimeout
from gateways.http.consistency import ReadYourWrites
from gateways.http.outcomes import CommandOutcomes
from queries.devices import DeviceListQueries

GRACE = 1.0  # seconds beyond the device timeout for the gateway to record and publish the outcome
MAX_QUEUED_WAIT = 30.0  # seconds; after that the caller gets 504 with the command id to poll
DEVICE_CACHE_TTL = 1.0  # seconds a device lookup is reused; the broker refuses unregistered devices anyway


@dataclass(frozen=True, slots=True)
class CallResult:
    command_id: str
    status: str
    value: object = None

    def as_dict(self) -> dict:
        return {"command_id": self.command_id, "status": self.status, "value": self.value}


class DeviceCalls:
    """One entry point for every device API, modern or libpyiotcloud-shaped."""

    def __init__(self, control: DeviceControl, devices: DeviceListQueries, outcomes: CommandOutcomes,
                 rw: ReadYourWrites):
        self._control, self._devices, self._outcomes, self._rw = control, devices, outcomes, rw
        self._recent_devices: dict[tuple[str, str], tuple[dict, float]] = {}

    def call(self, owner: str, name: str, api: str, params: dict | None, *, timeout: float | None = None,
             wait: bool = True, ttl: float | None = None) -> CallResult:
        device = self._device(owner, name)
        requested = self._control.request(device, api, params, timeout, ttl)
        waiter = self._outcomes.expect(requested.command_id)
        self._outcomes.wake_gateway()
        if not wait:
            self._rw.commands(None, requested.position)  # so GET /v1/commands/{id} finds it at once
            return CallResult(requested.command_id, "queued")
        # A queued call (ttl) is waited for a little at most: a request thread is not held for its ttl.
        budget = (timeout if timeout is not None else self._control.default_timeout) + GRACE + min(ttl or 0, MAX_QUEUED_WAIT)
        outcome = self._outcomes.wait(requested.command_id, waiter, budget)
        return settle(requested.command_id, outcome)

    def _device(self, owner: str, name: str) -> dict:
        now = time.monotonic()
        cached = self._recent_devices.get((owner, name))
        if cached and cached[1] > now:
            return cached[0]
        device = self._devices.get_device(owner, name)
        if len(self._recent_devices) > 50_000:
            self._recent_devices.clear()
        self._recent_devices[(owner, name)] = (device, now + DEVICE_CACHE_TTL)
        return device


def settle(command_id: str, outcome: dict | None) -> CallResult:
    """Turns an outcome into a result, or into the documented error for each way a call can end."""
    status = (outcome or {}).get("status")
    error = (outcome or {}).get("error") or ""
    if status == SUCCEEDED:
        return CallResult(command_id, status, outcome.get("result"))
    if status == EXPIRED:
        raise DeviceOffline(error or "the device is offline", command_id=command_id)
    if status == FAILED:
        raise DeviceCallFailed(error, command_id=command_id)
    if status == TIMED_OUT:
        raise DeviceTimeout(error, command_id=command_id)
    raise DeviceTimeout("no outcome yet; poll the command", command_id=command_id,
                        status_url=f"/v1/commands/{command_id}")
