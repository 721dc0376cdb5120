"""The API's short path with the broker replaced by an in-process wire: what the caller gets and
what the event store ends up holding (in-memory store, no broker)."""

from __future__ import annotations

import threading

import pytest

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.domain.device_commands import FAILED, QUEUED, SUCCEEDED, TIMED_OUT
from commands.errors import ValidationFailed
from gateways.http.direct_calls import DirectCalls, Finished, HandedOver

DEVICE = {"device_id": "f" * 40, "owner": "alice", "name": "lamp"}


class Wire:
    """The broker as seen by the API process: `device(api, payload)` answers each request (or None)."""

    def __init__(self, device=None, route=True):
        self.device, self.route = device, route
        self.requests, self.wakes = [], 0

    def listen(self, on_answer, on_return, on_outcome):
        self.on_answer, self.on_return, self.on_outcome = on_answer, on_return, on_outcome

    def publish_request(self, command_id, device_id, api, payload, timeout, then=None):
        self.requests.append((device_id, api, payload))

        def deliver():  # the link's thread: publish, then whatever comes back
            if then:
                then()
            if not self.route:
                self.on_return(command_id)
            elif self.device is not None and (answer := self.device(api, payload)) is not None:
                self.on_answer(device_id, api, answer)
        threading.Thread(target=deliver).start()

    def wake_gateway(self, reason="commands"):
        self.wakes += 1


def short_path(wire) -> tuple[DeviceControl, DirectCalls]:
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    return control, DirectCalls(control, wire, "api:test")


def stored(control, command_id):
    control.forget(command_id)
    return control.command(command_id)


def settle(control):
    """Waits for the outcomes recorded after the callers were answered."""
    with acting_as("service:test"):
        probe = control.dispatch(DEVICE, "get_mac", None, None, None, "probe")
        probe.time_out()
        control.record_later(probe).result(timeout=5)


def test_an_answer_goes_to_the_caller_and_then_to_the_store():
    control, direct = short_path(Wire(lambda api, payload: b'{"value": "running"}'))
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 2.0, None)
    assert isinstance(result, Finished) and result.outcome["status"] == SUCCEEDED
    assert result.outcome["result"] == "running"
    settle(control)
    assert stored(control, result.command_id).status == SUCCEEDED


def test_a_silent_device_times_out_and_the_store_says_so():
    control, direct = short_path(Wire(lambda api, payload: None))
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 0.2, None)
    assert result.outcome["status"] == TIMED_OUT
    settle(control)
    assert stored(control, result.command_id).status == TIMED_OUT


def test_a_malformed_answer_fails_the_call_with_the_reason():
    control, direct = short_path(Wire(lambda api, payload: b"[1, 2]"))
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 2.0, None)
    assert result.outcome["status"] == FAILED and result.outcome["error"]
    settle(control)
    assert stored(control, result.command_id).status == FAILED


@pytest.mark.parametrize("timeout, ttl, field", [
    ("5", None, "timeout"), ({"s": 1}, None, "timeout"), ([1], None, "timeout"), (True, None, "timeout"),
    (0.0, None, "timeout"), (2.0, "60", "ttl"), (2.0, -1, "ttl"),
])
def test_a_bad_timeout_or_ttl_is_refused_before_anything_is_recorded_or_sent(timeout, ttl, field):
    wire = Wire(lambda api, payload: b'{"value": 1}')
    control, direct = short_path(wire)
    with acting_as("user:alice"):
        with pytest.raises(ValidationFailed) as refused:
            direct.call(DEVICE, "get_status", None, timeout, ttl)
        assert refused.value.extensions["field"] == field and wire.requests == []
        assert direct.call(DEVICE, "get_status", None, 2.0, None).outcome["status"] == SUCCEEDED  # line free


def test_an_unroutable_request_is_handed_to_the_gateway_and_its_line_left_to_it():
    wire = Wire(route=False)
    control, direct = short_path(wire)
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 2.0, 60)
        assert isinstance(result, HandedOver) and wire.wakes == 1
        assert stored(control, result.command_id).status == QUEUED
        assert direct.call(DEVICE, "get_status", None, 2.0, None) is None   # queued work first
        wire.on_outcome(result.command_id)                                  # the gateway finished it
        wire.route = True
        assert isinstance(direct.call(DEVICE, "get_status", None, 0.1, None), Finished)


def test_an_answer_that_arrives_before_the_request_went_out_is_not_taken():
    wire = Wire(lambda api, payload: b'{"value": 7}')
    control, direct = short_path(wire)
    original = wire.publish_request

    taken = []

    def stray_first(command_id, device_id, api, payload, timeout, then=None):
        # A late answer to an earlier call: not taken, so the link passes it on to the gateway.
        taken.append(wire.on_answer(device_id, api, b'{"value": "stale"}'))
        original(command_id, device_id, api, payload, timeout, then)
    wire.publish_request = stray_first
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 2.0, None)
    assert result.outcome["result"] == 7
    assert taken == [False]
    assert wire.on_answer(DEVICE["device_id"], "get_status", b'{"value": 8}') is False  # the call is over
    assert wire.on_answer("e" * 40, "get_status", b'{"value": 8}') is False  # no call of ours at all


def test_the_answer_to_a_waiting_call_is_taken():
    wire = Wire(lambda api, payload: b'{"value": 1}')
    control, direct = short_path(wire)
    original, results = wire.on_answer, []

    def on_answer(device_id, api, body):
        results.append(original(device_id, api, body))
        return results[-1]
    wire.on_answer = on_answer
    with acting_as("user:alice"):
        result = direct.call(DEVICE, "get_status", None, 2.0, None)
    assert result.outcome["result"] == 1 and results == [True]


def test_a_second_call_on_a_busy_line_waits_for_the_first():
    release = threading.Event()
    order = []

    def device(api, payload):
        release.wait(5)
        order.append(payload)
        return b'{"value": 1}'
    control, direct = short_path(Wire(device))
    results = []

    def call(number):
        with acting_as("user:alice"):
            results.append(direct.call(DEVICE, "get_gpio", {"number": number}, 2.0, None))
    first = threading.Thread(target=call, args=(1,))
    first.start()
    while not direct._lines:
        threading.Event().wait(0.01)
    second = threading.Thread(target=call, args=(2,))
    second.start()
    second.join(0.2)
    assert second.is_alive()          # still waiting for the line, nothing published for it
    release.set()
    first.join(5)
    second.join(5)
    assert order == [b'{"number": 1}', b'{"number": 2}']
    assert [r.outcome["status"] for r in results] == [SUCCEEDED, SUCCEEDED]
