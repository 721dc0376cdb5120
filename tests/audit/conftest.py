"""A small, real store per event-store kind: two devices (one reissued and unregistered, one
flapping online/offline) and two calls (one born sent, one sent by a gateway), recorded through the applications themselves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.fleet import DeviceFleet
from commands.pki import CertificateAuthority
from iotcloud.bootstrap import build_device_control, build_event_applications
from iotcloud.config import Settings


@dataclass
class SmallStore:
    settings: Settings
    fleet: DeviceFleet
    control: DeviceControl
    kitchen: str      # reissued, then unregistered
    porch: str        # still registered

    def close(self) -> None:
        self.fleet.close()
        self.control.close()


def record_small_store(settings: Settings) -> SmallStore:
    _, fleet = build_event_applications(settings, CertificateAuthority.load_or_create(settings.pki_dir))
    control = build_device_control(settings)
    with acting_as("user:alice", correlation_id="c-register"):
        kitchen = fleet.register_device("alice", "kitchen").device_id
        porch = fleet.register_device("alice", "porch").device_id
    fleet.record_presence(kitchen, True, 1000.0, "mqtt")
    device = {"device_id": kitchen, "owner": "alice", "name": "kitchen"}
    with acting_as("user:alice", correlation_id="c-call"):
        # The API's short path (Requested born sent), then the gateway's (Requested, then Sent).
        command = control.dispatch(device, "get_gpio", {"number": 1}, None, None, by="api:test")
        command.record_answer(1, {"value": 1})
        control.record(command)
        command = control.command(control.request(device, "get_gpio", {"number": 2}).command_id)
        command.mark_sent(1000.5, "gateway:test")
        command.record_answer(2, {"value": 2})
        control.record(command)
    with acting_as("user:alice", correlation_id="c-reissue"):
        fleet.reissue_certificate("alice", "kitchen")
    fleet.record_presence(kitchen, False, 1001.0)
    with acting_as("user:alice", correlation_id="c-unregister"):
        fleet.unregister_device("alice", "kitchen")
    return SmallStore(settings, fleet, control, kitchen, porch)


@pytest.fixture
def small_store(make_settings, durable_store):
    store = record_small_store(make_settings(durable_store))
    yield store
    store.close()


@pytest.fixture
def raw_snapshots(small_store):
    """Removes every stored snapshot, directly in the database."""
    from raw_store import RawStore

    def remove() -> None:
        store = RawStore(small_store.settings, "DeviceFleet")
        table = "stored_snapshots" if store.sqlite else store.events.replace("_events", "_snapshots")
        store.execute(f"DELETE FROM {table}")
        store.close()
    return remove
