"""The device directory (commands/device_directory.py) on the in-memory event store: what it remembers,
and every way it learns to forget."""

from __future__ import annotations

import threading
import time

import pytest

from commands.device_directory import DeviceDirectory
from commands.errors import DeviceNotFound
from commands.fleet import DeviceFleet
from commands.owned_devices import owned_device
from commands.pki import CertificateAuthority
from projections.wakeup import Polling

SOON = 5.0  # seconds a condition may take to become true


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def fleet(ca):
    fleet = DeviceFleet(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, ca=ca)
    yield fleet
    fleet.close()


class CountedLookups:
    """The real lookup, counted: how often the directory read the event store."""

    def __init__(self):
        self.count = 0

    def __call__(self, fleet, owner, name):
        self.count += 1
        return owned_device(fleet, owner, name)


class Switchable:
    """A wakeup whose hearing the test turns on and off; `wait` returns at once, so the follower spins."""

    hears_nudges = False

    def __init__(self, stop: threading.Event):
        self.listening, self._stop = True, stop

    def wait(self, timeout):
        self._stop.wait(0.005)
        return {"DeviceFleet"}, set()

    def close(self):
        pass


def until(condition, what: str) -> None:
    deadline = time.monotonic() + SOON
    while not condition():
        assert time.monotonic() < deadline, f"not within {SOON} s: {what}"
        time.sleep(0.005)


def following(directory: DeviceDirectory) -> DeviceDirectory:
    until(lambda: directory.following, "the directory follows the log")
    return directory


def read_up_to(directory: DeviceDirectory, position: int) -> None:
    until(lambda: (directory.position or 0) >= position, f"the follower read event {position}")


def looks_up_every_time(directory: DeviceDirectory, lookups: CountedLookups) -> bool:
    before = lookups.count
    directory.get("alice", "kitchen")
    directory.get("alice", "kitchen")
    return lookups.count == before + 2


def polled(interval: float):
    return lambda stop: Polling({"DeviceFleet": None}, stop, interval)


def test_remembers_answers_while_it_follows_the_log(fleet):
    lookups = CountedLookups()
    device_id = fleet.register_device("alice", "kitchen").device_id
    directory = following(DeviceDirectory(fleet, lookups).follow(polled(0.01)))
    try:
        first = directory.get("alice", "kitchen")
        assert [directory.get("alice", "kitchen") for _ in range(5)] == [first] * 5
        assert first["device_id"] == device_id and lookups.count == 1
        assert not looks_up_every_time(directory, lookups)
    finally:
        directory.close()


def test_remembers_nothing_when_it_does_not_follow_the_log(fleet):
    lookups = CountedLookups()
    fleet.register_device("alice", "kitchen")
    directory = DeviceDirectory(fleet, lookups)
    for _ in range(3):
        directory.get("alice", "kitchen")
    assert lookups.count == 3


def test_an_unregistration_saved_here_is_forgotten_before_it_returns(fleet):
    fleet.register_device("alice", "kitchen")
    # The follower reads the log once, then sleeps for an hour: only the save itself can make it forget.
    directory = following(DeviceDirectory(fleet).follow(polled(3600)))
    try:
        directory.get("alice", "kitchen")
        fleet.unregister_device("alice", "kitchen")
        with pytest.raises(DeviceNotFound):
            directory.get("alice", "kitchen")
        fleet.register_device("alice", "kitchen")  # the name claimed again, by a new device
        assert directory.get("alice", "kitchen")["device_id"] == owned_device(fleet, "alice", "kitchen")["device_id"]
    finally:
        directory.close()


def test_a_change_another_writer_saved_is_forgotten_once_the_follower_reads_it(fleet):
    fleet.register_device("alice", "kitchen")
    directory = following(DeviceDirectory(fleet).follow(polled(0.01)))
    try:
        directory.get("alice", "kitchen")
        fleet.saved_observers.clear()  # as if another process saved it: only the log tells
        position = fleet.unregister_device("alice", "kitchen")
        read_up_to(directory, position)
        with pytest.raises(DeviceNotFound):
            directory.get("alice", "kitchen")
    finally:
        directory.close()


def test_presence_certificates_and_passwords_leave_the_answers_remembered(fleet):
    lookups = CountedLookups()
    device_id = fleet.register_device("alice", "kitchen", password_login=True).device_id
    directory = following(DeviceDirectory(fleet, lookups).follow(polled(0.01)))
    try:
        directory.get("alice", "kitchen")
        fleet.record_presence(device_id, True, 1000.0, "mqtt")
        fleet.record_presence(device_id, False, 1001.0)
        fleet.reissue_certificate("alice", "kitchen")
        *_, position = fleet.rotate_broker_password("alice", "kitchen")
        read_up_to(directory, position)
        directory.get("alice", "kitchen")
        assert lookups.count == 1
        fleet.register_device("bob", "garage")  # any other event: everything is read again
        directory.get("alice", "kitchen")
        assert lookups.count == 2
    finally:
        directory.close()


def test_a_lookup_that_raced_a_change_is_not_remembered(fleet):
    fleet.register_device("alice", "kitchen")
    reading, release = threading.Event(), threading.Event()
    lookups = CountedLookups()

    def slow_lookup(fleet, owner, name):
        reading.set()
        release.wait(SOON)
        return lookups(fleet, owner, name)

    directory = following(DeviceDirectory(fleet, slow_lookup).follow(polled(3600)))
    try:
        racing = threading.Thread(target=directory.get, args=("alice", "kitchen"))
        racing.start()
        assert reading.wait(SOON)
        directory.forget()  # a change recorded while the aggregates were being read
        release.set()
        racing.join(SOON)
        directory.get("alice", "kitchen")
        assert lookups.count == 2
    finally:
        directory.close()


def test_when_it_stops_hearing_commits_it_forgets_and_remembers_nothing_until_it_hears_again(fleet):
    lookups = CountedLookups()
    fleet.register_device("alice", "kitchen")
    wakeups: list[Switchable] = []
    directory = following(DeviceDirectory(fleet, lookups).follow(lambda stop: wakeups.append(Switchable(stop))
                                                                 or wakeups[-1]))
    try:
        directory.get("alice", "kitchen")
        wakeups[0].listening = False
        until(lambda: not directory.following, "the directory stops remembering")
        assert looks_up_every_time(directory, lookups)
        wakeups[0].listening = True
        following(directory)
        assert not looks_up_every_time(directory, lookups)
    finally:
        directory.close()


def test_a_log_it_cannot_read_makes_it_remember_nothing(fleet):
    lookups = CountedLookups()
    fleet.register_device("alice", "kitchen")
    directory = following(DeviceDirectory(fleet, lookups).follow(polled(0.01)))
    broken = threading.Event()
    real = fleet.recorder.select_notifications

    def select_notifications(*args, **kwargs):
        if broken.is_set():
            raise ConnectionError("the store went away")
        return real(*args, **kwargs)

    fleet.recorder.select_notifications = select_notifications
    try:
        directory.get("alice", "kitchen")
        broken.set()
        until(lambda: not directory.following, "the directory stops remembering")
        assert looks_up_every_time(directory, lookups)
        broken.clear()
        following(directory)
        assert not looks_up_every_time(directory, lookups)
    finally:
        directory.close()
