"""`verify` names the first altered, missing, inserted or reordered event, on SQLite and PostgreSQL,
with the store changed by direct SQL as someone with database access would."""

from __future__ import annotations

import pytest
from raw_store import RawStore

from commands.chain.verify import verify


@pytest.fixture
def raw(small_store):
    stores = {name: RawStore(small_store.settings, name) for name in ("DeviceFleet", "DeviceControl")}
    yield stores
    for store in stores.values():
        store.close()


def broken(app):
    verdict = verify(app.recorder, batch=4)  # small batches: breaks at batch edges are found too
    assert verdict.broken is not None, "the change went unnoticed"
    return verdict.broken


def test_an_untouched_store_verifies(small_store):
    for app in (small_store.fleet, small_store.control):
        verdict = verify(app.recorder, batch=3)
        assert verdict.intact and verdict.events == app.recorder.max_notification_id()


def test_every_byte_of_the_stored_calls_is_covered(small_store, raw):
    """Each byte of each stored call event (state: payload, timestamp, actor, correlation and
    causation ids; and the topic), changed alone, is named at its own position."""
    control, store = small_store.control, raw["DeviceControl"]
    for notification_id in store.ids():
        originator_id, version, topic, state = store.row(notification_id)
        for column, original in (("state", state), ("topic", topic.encode())):
            for index in range(len(original)):
                changed = bytearray(original)
                changed[index] ^= 0x01
                store.set(notification_id, column, bytes(changed) if column == "state" else changed.decode("latin-1"))
                found = broken(control)
                assert (found.kind, found.notification_id) == ("altered", notification_id), (column, index)
            store.set(notification_id, column, state if column == "state" else topic)
        assert verify(control.recorder).intact


def test_bytes_of_a_device_registration_are_covered(small_store, raw):
    """The registration (certificate included) at a sample of byte positions, on the fleet's log."""
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    notification_id = store.ids()[0]
    _, _, _, state = store.row(notification_id)
    for index in [*range(0, len(state), 53), len(state) - 1]:
        changed = bytearray(state)
        changed[index] = (changed[index] + 1) % 256
        store.set(notification_id, "state", bytes(changed))
        found = broken(fleet)
        assert (found.kind, found.notification_id) == ("altered", notification_id), index
    store.set(notification_id, "state", state)
    assert verify(fleet.recorder).intact


def test_a_changed_identity_or_version_is_named(small_store, raw):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    ids = store.ids()
    originator_id, version, _, _ = store.row(ids[2])
    store.set(ids[2], "originator_version", version + 7)
    found = broken(fleet)
    assert (found.kind, found.notification_id, found.originator_version) == ("inserted", ids[2], version + 7)
    store.set(ids[2], "originator_version", version)
    text = str(originator_id).replace("-", "")
    store.set(ids[2], "originator_id", text[:-1] + ("0" if text[-1] != "0" else "1"))
    found = broken(fleet)
    assert (found.kind, found.notification_id) == ("inserted", ids[2])


@pytest.mark.parametrize("position", [0, 3, -1])
def test_a_deleted_event_is_named_as_missing(small_store, raw, position):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    notification_id = store.ids()[position]
    originator_id, version, _, _ = store.row(notification_id)
    store.execute("DELETE FROM {events} WHERE {id} = ?", (notification_id,))
    found = broken(fleet)
    assert (found.kind, found.notification_id, found.originator_version) == ("missing", notification_id, version)
    assert found.originator_id == str(originator_id).replace("-", "")


def test_an_event_deleted_with_its_link_is_named_as_missing(small_store, raw):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    notification_id = store.ids()[3]
    store.execute("DELETE FROM {events} WHERE {id} = ?", (notification_id,))
    store.execute("DELETE FROM {chain} WHERE notification_id = ?", (notification_id,))
    found = broken(fleet)
    assert (found.kind, found.notification_id) == ("missing", notification_id)


def test_an_event_added_at_the_end_is_named_as_inserted(small_store, raw):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    last = store.ids()[-1]
    originator_id, version, topic, state = store.row(last)
    store.execute("INSERT INTO {events} (originator_id, originator_version, topic, state, {id}) "
                  "VALUES (?, ?, ?, ?, ?)", (originator_id, version + 1, topic, state, last + 1))
    found = broken(fleet)
    assert (found.kind, found.notification_id, found.originator_version) == ("inserted", last + 1, version + 1)


def test_an_event_slipped_into_the_middle_is_named_as_inserted(small_store, raw):
    """Everything from position 3 moves one place up and a forged event takes position 3."""
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    ids = store.ids()
    target = ids[3]
    originator_id, version, topic, state = store.row(ids[-1])
    for notification_id in reversed(ids[3:]):
        store.renumber(notification_id, notification_id + 1)
    store.execute("INSERT INTO {events} (originator_id, originator_version, topic, state, {id}) "
                  "VALUES (?, ?, ?, ?, ?)", (originator_id, version + 1, topic, state, target))
    found = broken(fleet)
    assert (found.kind, found.notification_id) == ("inserted", target)


@pytest.mark.parametrize("first, second", [(1, 2), (2, 6)])
def test_swapped_events_are_named_as_reordered(small_store, raw, first, second):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    ids = store.ids()
    a, b = ids[first], ids[second]
    store.renumber(a, 10_000)
    store.renumber(b, a)
    store.renumber(10_000, b)
    found = broken(fleet)
    assert (found.kind, found.notification_id) == ("reordered", a)
    assert f"notification {b}" in found.detail


def test_a_changed_link_is_named(small_store, raw):
    fleet, store = small_store.fleet, raw["DeviceFleet"]
    notification_id = store.ids()[4]
    store.execute("UPDATE {chain} SET hash = ? WHERE notification_id = ?", (bytes(32), notification_id))
    found = broken(fleet)
    assert (found.kind, found.notification_id) == ("altered", notification_id)
