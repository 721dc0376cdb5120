"""The broker's in-memory registry follows registrations and unregistrations."""

from __future__ import annotations

from projections.registered_devices import RegisteredDevices


def test_knows_registered_devices_and_forgets_unregistered_ones(fleet):
    kept = fleet.register_device("alice", "kept").device_id
    gone = fleet.register_device("alice", "gone").device_id
    fleet.unregister_device("alice", "gone")
    registry = RegisteredDevices(fleet)
    registry.catch_up()
    assert registry.is_registered(kept) and not registry.is_registered(gone)
    late = fleet.register_device("bob", "late").device_id
    assert not registry.is_registered(late)
    registry.catch_up()
    assert registry.is_registered(late)
    fleet.unregister_device("alice", "kept")
    registry.catch_up()
    assert not registry.is_registered(kept) and not registry.is_registered("0" * 40)
