"""A platform with a recorded device history: calls answered, refused and timed out, presence
changes, a reissue and an unregistration, of two owners. The calls are recorded through the write
side as the gateway records them (DeviceControl decisions); devices are registered, reissued and
unregistered through the REST API."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from commands.context import acting_as
from commands.device_decisions import MarkSent, RecordAnswer, RejectAnswer, TimeOut
from queries.read_models import HISTORY
from tests.api.conftest import Api, api  # noqa: F401 - the api fixture, shared


@dataclass
class Owner:
    username: str
    token: str
    devices: dict = field(default_factory=dict)  # name -> device id


class Recorder:
    def __init__(self, api: Api):
        self.api = api
        self.platform = api.platform

    def owner(self, username: str, *device_names: str) -> Owner:
        owner = Owner(username, self.api.signed_in(username))
        for name in device_names:
            answer = self.api.post("/v1/devices", {"name": name}, owner.token)
            assert answer.status_code == 201, answer.text
            owner.devices[name] = answer.json["device_id"]
        return owner

    def call(self, owner: Owner, name: str, api: str, params: dict, outcome: str = "answer", value=1) -> str:
        device = {"device_id": owner.devices[name], "owner": owner.username, "name": name}
        control = self.platform.control
        with acting_as(f"user:{owner.username}", f"corr-{name}-{api}"):
            command_id = control.request(device, api, params, timeout=5).command_id
        with acting_as("service:gateway"):
            control.decide([MarkSent(command_id, time.time(), "test-gateway")])
            if outcome == "answer":
                control.decide([RecordAnswer(command_id, value, {"value": value})])
            elif outcome == "refuse":
                control.decide([RejectAnswer(command_id, "answer has no 'value'", '{"oops": 1}')])
            elif outcome == "timeout":
                control.decide([TimeOut(command_id)])
        return command_id

    def presence(self, owner: Owner, name: str, online: bool) -> None:
        with acting_as("service:gateway"):
            self.platform.fleet.record_presence(owner.devices[name], online, time.time(), "mqtt")

    def settled(self) -> None:
        """Until the history read model shows every event recorded so far."""
        catalogue = self.platform.catalogue
        for source, app in (("DeviceControl", self.platform.control), ("DeviceFleet", self.platform.fleet)):
            head = app.recorder.max_notification_id() or 0
            assert catalogue.wait_for(HISTORY, source, head, 20), f"history never reached {source} {head}"


def record_a_run(recorder: Recorder) -> tuple[Owner, Owner]:
    alice = recorder.owner("alice", "kitchen", "garage")
    bob = recorder.owner("bob", "shed")
    recorder.presence(alice, "kitchen", True)
    recorder.call(alice, "kitchen", "get_gpio", {"number": 1}, value=1)
    recorder.call(alice, "kitchen", "set_gpio", {"number": 2, "value": 0}, value=0)
    recorder.call(alice, "kitchen", "get_gpio", {"number": 3}, outcome="timeout")
    recorder.call(alice, "garage", "get_status", {}, value="running")
    recorder.call(alice, "garage", "get_gpio", {"number": 1}, outcome="refuse")
    recorder.presence(alice, "kitchen", False)
    recorder.presence(bob, "shed", True)
    recorder.call(bob, "shed", "get_gpio", {"number": 4}, value=0)
    assert recorder.api.post("/v1/devices/garage/certificate", {}, alice.token).status_code == 200
    assert recorder.api.delete("/v1/devices/garage", alice.token).status_code == 204
    recorder.settled()
    return alice, bob


@pytest.fixture
def recorded(api):
    recorder = Recorder(api)
    alice, bob = record_a_run(recorder)
    return recorder, alice, bob
