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


def test_follows_broker_passwords_of_password_devices(fleet):
    from commands.broker_passwords import broker_password_matches
    password_device = fleet.register_device("alice", "pw", password_login=True)
    certificate_device = fleet.register_device("alice", "cert").device_id
    registry = RegisteredDevices(fleet)
    registry.catch_up()
    assert broker_password_matches(registry.password_hash(password_device.device_id), password_device.broker_password)
    assert registry.password_hash(certificate_device) is None
    _, rotated, _ = fleet.rotate_broker_password("alice", "pw")
    registry.catch_up()
    assert not broker_password_matches(registry.password_hash(password_device.device_id),
                                       password_device.broker_password)
    assert broker_password_matches(registry.password_hash(password_device.device_id), rotated)
    fleet.unregister_device("alice", "pw")
    registry.catch_up()
    assert registry.password_hash(password_device.device_id) is None
