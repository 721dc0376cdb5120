"""Device calls for both REST flavours: the API's short path (gateways.http.direct_calls) when it
can, else the gateway's: append the request, wake the gateway, wait for the outcome."""

from __future__ import annotations

from dataclasses import dataclass

from commands.device_control import DeviceControl
from commands.domain.device_commands import EXPIRED, FAILED, SUCCEEDED, TIMED_OUT
from commands.errors import DeviceCallFailed, DeviceOffline, DeviceTimeout
from commands.device_directory import DeviceDirectory
from gateways.http.capacity import Busy, ConcurrencyLimit, TooManyWaitingCalls
from gateways.http.consistency import ReadYourWrites
from gateways.http.direct_calls import DirectCalls, Finished, HandedOver
from gateways.http.outcomes import CommandOutcomes

GRACE = 1.0  # seconds beyond the device timeout for the gateway to record and publish the outcome
MAX_QUEUED_WAIT = 30.0  # seconds; after that the caller gets 504 with the command id to poll
UNBOUNDED = ConcurrencyLimit(per_key=1 << 30)


@dataclass(frozen=True, slots=True)
class CallResult:
    command_id: str
    status: str
    value: object = None

    def as_dict(self) -> dict:
        return {"command_id": self.command_id, "status": self.status, "value": self.value}


class DeviceCalls:
    """One entry point for every device API, modern or libpyiotcloud-shaped."""

    def __init__(self, control: DeviceControl, directory: DeviceDirectory, outcomes: CommandOutcomes,
                 rw: ReadYourWrites, waiting: ConcurrencyLimit = UNBOUNDED, direct: DirectCalls | None = None,
                 guard=None):
        """`waiting` bounds the calls that hold a request thread while they wait, per user and in all;
        `direct` is the short path (None: every call goes through the gateway)."""
        self._control, self._directory, self._outcomes, self._rw = control, directory, outcomes, rw
        self._waiting = waiting
        self._direct = direct
        self._guard = guard  # guard(device, api, params) raises what refuses a call before it is recorded

    def call(self, owner: str, name: str, api: str, params: dict | None, *, timeout: float | None = None,
             wait: bool = True, ttl: float | None = None, defer_when_busy: bool = False) -> CallResult:
        """Over the caller's share of waiting calls the call is refused before anything is recorded
        (429 too-many-waiting-calls), or recorded and answered queued if `defer_when_busy`."""
        device = self._directory.get(owner, name)
        if self._guard is not None:
            self._guard(device, api, params)
        timeout, ttl = self._control.timing(timeout, ttl)
        if not wait:
            return self._queued(device, api, params, timeout, ttl)
        # A queued call (ttl) is waited for a little at most: a request thread is not held for its ttl.
        budget = timeout + GRACE + min(ttl, MAX_QUEUED_WAIT)
        try:
            slot = self._waiting.acquire(device["owner"].lower(), budget)
        except Busy as busy:
            if defer_when_busy:
                return self._queued(device, api, params, timeout, ttl)
            who = "the API's waiting calls are at their bound" if busy.in_all else \
                f"at most {self._waiting.per_key} of your calls may wait at once"
            raise TooManyWaitingCalls(f"{who}; retry later, or call with wait=false and poll the command",
                                      retry_after=busy.retry_after) from None
        try:
            direct = self._direct.call(device, api, params, timeout, ttl) if self._direct is not None else None
            if isinstance(direct, Finished):
                return settle(direct.command_id, direct.outcome)
            if isinstance(direct, HandedOver):
                command_id = direct.command_id
                waiter = self._outcomes.expect(command_id)
            else:
                command_id = self._request(device, api, params, timeout, ttl).command_id
                waiter = self._outcomes.expect(command_id)
                self._outcomes.wake_gateway()
            outcome = self._outcomes.wait(command_id, waiter, budget)
        finally:
            self._waiting.release(device["owner"].lower(), slot)
        return settle(command_id, outcome)

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._directory.close()

    def _request(self, device: dict, api: str, params: dict | None, timeout, ttl):
        """Records a call for the gateway to send; the short path leaves its line to the gateway meanwhile."""
        requested = self._control.request(device, api, params, timeout, ttl)
        if self._direct is not None and not device.get("correlation_ids"):
            self._direct.defer(device["device_id"], api, requested.command_id)
        return requested

    def _queued(self, device: dict, api: str, params: dict | None, timeout, ttl) -> CallResult:
        requested = self._request(device, api, params, timeout, ttl)
        self._outcomes.wake_gateway()
        self._rw.commands(None, requested.position)  # so GET /v1/commands/{id} finds it at once
        return CallResult(requested.command_id, "queued")


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
