"""The device directory against the durable event stores, with the wakeup the API builds for it: a
change another process records (a second DeviceFleet on the same store) is forgotten once the log
shows it, and on PostgreSQL a lost notification connection stops the remembering until it is back."""

from __future__ import annotations

import time

import psycopg
import pytest

from commands.device_directory import DeviceDirectory
from commands.errors import DeviceNotFound
from commands.owned_devices import owned_device
from commands.pki import CertificateAuthority
from iotcloud.bootstrap import build_device_directory, build_event_applications
from projections.wakeup import connect_kwargs, wakeup_for

SOON = 10.0


def until(condition, what: str) -> None:
    deadline = time.monotonic() + SOON
    while not condition():
        assert time.monotonic() < deadline, f"not within {SOON} s: {what}"
        time.sleep(0.01)


@pytest.fixture
def two_processes(make_settings, durable_store):
    """The API's fleet with its directory, and another process's fleet on the same store."""
    settings = make_settings(durable_store)
    ca = CertificateAuthority.load_or_create(settings.pki_dir)
    _, api_fleet = build_event_applications(settings, ca)
    _, other_fleet = build_event_applications(settings, ca)
    directory = build_device_directory(api_fleet)
    until(lambda: directory.following, "the directory follows the fleet's log")
    yield api_fleet, other_fleet, directory
    directory.close()
    api_fleet.close()
    other_fleet.close()


def test_an_unregistration_by_another_process_is_forgotten(two_processes):
    api_fleet, other_fleet, directory = two_processes
    device_id = other_fleet.register_device("alice", "kitchen").device_id
    assert directory.get("alice", "kitchen")["device_id"] == device_id
    position = other_fleet.unregister_device("alice", "kitchen")
    until(lambda: (directory.position or 0) >= position, "the follower read the unregistration")
    with pytest.raises(DeviceNotFound):
        directory.get("alice", "kitchen")


def test_a_name_given_to_a_new_device_by_another_process_is_looked_up_again(two_processes):
    api_fleet, other_fleet, directory = two_processes
    other_fleet.register_device("alice", "kitchen")
    directory.get("alice", "kitchen")
    other_fleet.unregister_device("alice", "kitchen")
    credentials = other_fleet.register_device("alice", "kitchen")
    until(lambda: (directory.position or 0) >= credentials.position, "the follower read the new registration")
    assert directory.get("alice", "kitchen")["device_id"] == credentials.device_id


def listeners(fleet) -> set[int]:
    with psycopg.connect(**connect_kwargs(fleet), autocommit=True) as admin:
        return {pid for (pid,) in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                                " AND query LIKE 'LISTEN %%'")}


@pytest.mark.parametrize("durable_store", ["postgres"])
def test_a_lost_notification_connection_is_replaced_and_what_it_missed_is_read(make_settings, durable_store):
    settings = make_settings(durable_store)
    ca = CertificateAuthority.load_or_create(settings.pki_dir)
    _, api_fleet = build_event_applications(settings, ca)
    _, other_fleet = build_event_applications(settings, ca)
    lookups = []
    directory = DeviceDirectory(api_fleet, lambda *args: lookups.append(args) or owned_device(*args)).follow(
        lambda stop: wakeup_for({"DeviceFleet": api_fleet}, stop, nudges=False))
    try:
        until(lambda: directory.following and listeners(api_fleet), "the directory listens")
        other_fleet.register_device("alice", "kitchen")
        directory.get("alice", "kitchen")
        before = listeners(api_fleet)
        with psycopg.connect(**connect_kwargs(api_fleet), autocommit=True) as admin:
            for pid in before:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        position = other_fleet.unregister_device("alice", "kitchen")
        until(lambda: listeners(api_fleet) - before, "the directory listens on a new connection")
        until(lambda: directory.following and (directory.position or 0) >= position, "it has read the log again")
        with pytest.raises(DeviceNotFound):
            directory.get("alice", "kitchen")
        assert len(lookups) == 2
    finally:
        directory.close()
        api_fleet.close()
        other_fleet.close()
