"""The device as it was, folded from the event store: before and after a reissue and an
unregistration, by revision and by time, with and without snapshots."""

from __future__ import annotations

import datetime as dt

import pytest

from commands.audit.time_travel import device_at_revision, device_record, revision_at
from commands.audit.timeline import device_events
from commands.domain.devices import Device
from commands.errors import DeviceNotFound


def history(fleet, device_id):
    return list(fleet.events.get(Device.create_id(device_id)))


def test_revisions_before_and_after_a_reissue_and_an_unregistration(small_store):
    fleet, kitchen = small_store.fleet, small_store.kitchen
    events = history(fleet, kitchen)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Registered", "Connected", "CertificateReissued", "Disconnected", "Unregistered"]
    first_serial, second_serial = events[0].certificate["serial"], events[2].certificate["serial"]
    states = {revision: device_record(device_at_revision(fleet, kitchen, revision)) for revision in range(1, 6)}
    assert [s["revision"] for s in states.values()] == [1, 2, 3, 4, 5]
    assert [s["certificate"]["serial"] for s in states.values()] == [first_serial] * 2 + [second_serial] * 3
    assert [s["registered"] for s in states.values()] == [True, True, True, True, False]
    assert [s["online"] for s in states.values()] == [False, True, True, False, False]
    assert all(s["owner"] == "alice" and s["name"] == "kitchen" for s in states.values())
    assert "pem" not in states[1]["certificate"]


def test_time_travel_by_moment_picks_the_last_revision_recorded_by_then(small_store):
    fleet, kitchen = small_store.fleet, small_store.kitchen
    events = history(fleet, kitchen)
    for revision, event in enumerate(events, start=1):
        assert revision_at(fleet, kitchen, event.timestamp) == revision
        assert revision_at(fleet, kitchen, event.timestamp + dt.timedelta(microseconds=1)) == revision
    reissued = events[2].timestamp
    before = device_at_revision(fleet, kitchen, revision_at(fleet, kitchen, reissued - dt.timedelta(microseconds=1)))
    assert before.certificate["serial"] == events[0].certificate["serial"]
    with pytest.raises(DeviceNotFound):
        revision_at(fleet, kitchen, events[0].timestamp - dt.timedelta(seconds=1))
    assert revision_at(fleet, kitchen, dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)) == 5


def test_unknown_devices_and_revisions_are_refused(small_store):
    with pytest.raises(DeviceNotFound):
        device_at_revision(small_store.fleet, "f" * 40, 1)
    with pytest.raises(DeviceNotFound):
        device_at_revision(small_store.fleet, small_store.kitchen, 0)


def test_snapshots_give_the_same_state_as_folding_every_event(small_store):
    """A device with 250 events: snapshots are taken as it is saved (every 100 versions) and the
    state at any revision equals the full fold."""
    fleet, porch = small_store.fleet, small_store.porch
    for n in range(249):
        fleet.record_presence(porch, n % 2 == 0, 2000.0 + n, "mqtt")
    aggregate_id = Device.create_id(porch)
    assert [s.originator_version for s in fleet.snapshots.get(aggregate_id)] == [100, 200]
    for revision in (1, 99, 100, 101, 199, 250):
        with_snapshots = device_record(device_at_revision(fleet, porch, revision))
        folded = device_record(device_at_revision(fleet, porch, revision, use_snapshots=False))
        assert with_snapshots == folded and folded["revision"] == revision
        assert folded["online"] == (revision % 2 == 0)


def test_devices_recorded_before_snapshots_get_them_on_their_first_audit(small_store, raw_snapshots):
    fleet, porch = small_store.fleet, small_store.porch
    for n in range(230):
        fleet.record_presence(porch, n % 2 == 0, 2000.0 + n, "mqtt")
    raw_snapshots()  # as if recorded by a version without snapshots
    aggregate_id = Device.create_id(porch)
    assert list(fleet.snapshots.get(aggregate_id)) == []
    assert device_record(device_at_revision(fleet, porch, 150))["revision"] == 150
    assert [s.originator_version for s in fleet.snapshots.get(aggregate_id)] == [100]
    device_at_revision(fleet, porch, None)
    assert [s.originator_version for s in fleet.snapshots.get(aggregate_id)] == [100, 200]


def test_a_devices_timeline_holds_its_events_and_its_calls_events_in_order(small_store):
    lines = device_events(small_store.fleet, small_store.control, small_store.kitchen)
    kinds = [line["event"] for line in lines]
    assert kinds == ["Device.Registered", "Device.Connected",
                     "DeviceCommand.Requested", "DeviceCommand.Succeeded",
                     "DeviceCommand.Requested", "DeviceCommand.Sent", "DeviceCommand.Succeeded",
                     "Device.CertificateReissued", "Device.Disconnected", "Device.Unregistered"]
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)
    registered, requested, reissued = lines[0], lines[2], lines[7]
    assert (registered["log"], registered["revision"], registered["actor"], registered["correlation_id"]) == (
        "DeviceFleet", 1, "user:alice", "c-register")
    assert requested["log"] == "DeviceControl" and requested["api"] == "get_gpio"
    assert requested["correlation_id"] == requested["causation_id"] == "c-call"
    # Who sent each call: the API in its Requested (born sent), the gateway in its own Sent.
    assert requested["sent_by"] == "api:test" and "sent_by" not in lines[4] and lines[5]["sent_by"] == "gateway:test"
    assert reissued["correlation_id"] == "c-reissue" and reissued["revision"] == 3
    positions = [line["position"] for line in lines if line["log"] == "DeviceFleet"]
    assert positions == sorted(positions)
    assert all(set(line) >= {"event", "revision", "position", "timestamp", "actor", "correlation_id",
                             "causation_id"} for line in lines)
    assert device_events(small_store.fleet, small_store.control, small_store.porch)[0]["event"] == "Device.Registered"
    assert all(line["log"] == "DeviceFleet"
               for line in device_events(small_store.fleet, small_store.control, small_store.porch))
