"""A batch merges every event's writes to one document into one upsert: the read model must not notice."""

from __future__ import annotations

import pytest
from eventsourcing.utils import get_topic
from pymongo import MongoClient

from commands.context import acting_as
from commands.device_decisions import Expire, MarkSent, RecordAnswer, RejectAnswer, ReturnToQueue, TimeOut
from commands.domain.device_commands import DeviceCommand
from commands.domain.devices import Device, DeviceNameClaim
from iotcloud.bootstrap import build_device_control
from projections.device_list import DeviceListProjection
from projections.guarded import BatchWriter
from projections.history import HistoryProjection
from iotcloud.config import DEFAULT_PROJECTION_HOLD as LONGEST_HOLD
from projections.runner import Projector, step_source
from projections.topics import ConsumedTopics
from queries.read_models import CHECKPOINTS, ReadModelCatalogue, collection_name
from queries.timestamps import normalised

DEVICE = {"device_id": "dev-1", "owner": "alice", "name": "lamp", "correlation_ids": True}
ENDINGS = [
    lambda cid: RecordAnswer(cid, {"state": "on"}, {"value": {"state": "on"}}),
    lambda cid: RejectAnswer(cid, "bad answer", "{}"),
    lambda cid: TimeOut(cid),
    lambda cid: Expire(cid, "the device is offline"),
]


def call_history(control, calls: int) -> None:
    """Calls that end every way there is, some sent twice (unrouted, then sent again), interleaved."""
    with acting_as("user:alice"):
        ids = [control.request(DEVICE, "get_status", None, timeout=5).command_id for _ in range(calls)]
    with acting_as("service:gateway"):
        for i, command_id in enumerate(ids):
            if i % 3 == 0:
                assert control.decide([MarkSent(command_id, 1.0, "g")])
                assert control.decide([ReturnToQueue(command_id, "unrouted")])
            if i % 5 != 4:  # every fifth expires without ever being sent
                assert control.decide([MarkSent(command_id, 2.0 + i, "g")])
        for i, command_id in enumerate(ids):
            ending = ENDINGS[3] if i % 5 == 4 else ENDINGS[i % 3]
            assert control.decide([ending(command_id)])


class CallHistory(HistoryProjection):
    """The history of device calls alone (no device events, so no DeviceFleet to follow)."""
    sources = ("DeviceControl",)


def project(db, control, batch: int) -> list[dict]:
    projector = Projector(CallHistory(), {"DeviceControl": control}, db, batch)
    while projector.step():
        pass
    return [normalised(doc) for doc in db[collection_name("history", 1)].find({}).sort([("_id", 1)])]


@pytest.fixture
def control(make_settings):
    control = build_device_control(make_settings("popo"))
    yield control
    control.close()


def test_merged_batches_give_the_documents_that_one_event_at_a_time_gives(control, mongo_uri):
    call_history(control, 20)
    client = MongoClient(mongo_uri, tz_aware=True)
    one_by_one, merged = client["merge_one_by_one"], client["merge_merged"]
    try:
        expected = project(one_by_one, control, batch=1)
        assert len(expected) == 20
        assert {doc["state"] for doc in expected} == {"succeeded", "failed", "timed_out", "expired"}
        for batch in (2, 7, 1000):
            client.drop_database(merged)
            assert project(merged, control, batch) == expected, f"batches of {batch}"
        # A replay from an older checkpoint (a crash before it advanced) changes nothing either.
        merged[CHECKPOINTS].delete_many({})
        assert project(merged, control, batch=4) == expected
    finally:
        client.drop_database(one_by_one)
        client.drop_database(merged)
        client.close()


def test_only_events_a_projection_shows_are_decoded():
    device_list = ConsumedTopics(DeviceListProjection())
    for shown in (Device.Registered, Device.CertificateReissued, Device.Connected, Device.Disconnected,
                  Device.Unregistered):
        assert device_list(get_topic(shown))
    for hidden in (DeviceNameClaim.Claimed, DeviceNameClaim.Released):
        assert not device_list(get_topic(hidden))
    history = ConsumedTopics(HistoryProjection())
    assert all(history(get_topic(cls)) for cls in (DeviceCommand.Requested, DeviceCommand.Sent,
                                                     DeviceCommand.Succeeded, DeviceCommand.Unrouted,
                                                     Device.Registered))
    assert not history(get_topic(DeviceNameClaim.Claimed))


def test_a_projection_without_dispatch_table_sees_every_event():
    class Everything:
        def apply(self, event, position, writer):
            pass
    everything = ConsumedTopics(Everything())
    assert all(everything(topic) for topic in (get_topic(Device.Registered), get_topic(DeviceNameClaim.Claimed),
                                               "no.such:Topic"))


def _requested(control, calls: int) -> list[str]:
    with acting_as("user:alice"):
        ids = [control.request(DEVICE, "get_status", None, timeout=5).command_id for _ in range(calls)]
    with acting_as("service:gateway"):
        for command_id in ids:
            assert control.decide([MarkSent(command_id, 2.0, "g")])
    return ids


def _docs(db) -> dict[str, dict]:
    return {doc["_id"]: doc for doc in db[collection_name("history", 1)].find({})}


def test_a_busy_projector_writes_a_call_once_with_its_outcome_and_a_crash_loses_nothing(control, mongo_uri):
    """Open calls are held for their outcome (here a busy batch of 20 events); the checkpoint stays
    before the first held event, so a projector that dies holding them replays them."""
    client = MongoClient(mongo_uri, tz_aware=True)
    db, expected_db = client["hold_live"], client["hold_expected"]
    try:
        first = _requested(control, 10)  # 20 events: a busy batch
        projector = Projector(CallHistory(), {"DeviceControl": control}, db)
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 20
        assert _docs(db) == {}, "open calls written at once under load"
        start = ReadModelCatalogue(db).position("history", 1, "DeviceControl")
        assert start == min(control.recorder.select_notifications(start=1, limit=1000), key=lambda n: n.id).id - 1
        with acting_as("service:gateway"):
            for command_id in first[:6]:
                assert control.decide([RecordAnswer(command_id, {"state": "on"}, {"value": {"state": "on"}})])
        second = _requested(control, 5)  # with the outcomes around it: 17 events, still busy
        with acting_as("service:gateway"):
            assert control.decide([RecordAnswer(second[0], {"state": "on"}, {"value": {"state": "on"}})])
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 17
        written = _docs(db)
        # The six finished calls and the finished one of the second lot went out, each once and whole.
        assert set(written) == set(first[:6]) | {second[0]}
        assert {doc["state"] for doc in written.values()} == {"succeeded"}
        assert all(doc["request_payload"] == "{}" and doc["api"] == "get_status" for doc in written.values())
        assert ReadModelCatalogue(db).position("history", 1, "DeviceControl") < \
            min(n.id for n in control.recorder.select_notifications(start=1, limit=1000)
                if str(n.originator_id) == first[6])
        # The projector dies holding the rest: a new one replays from the checkpoint, loses nothing.
        replayed = Projector(CallHistory(), {"DeviceControl": control}, db)
        while step_source([replayed], "DeviceControl", hold=0.0):
            pass
        project(expected_db, control, batch=1)
        assert [normalised(d) for d in sorted(_docs(db).values(), key=lambda d: d["_id"])] == \
            [normalised(d) for d in sorted(_docs(expected_db).values(), key=lambda d: d["_id"])]
        assert {doc["state"] for doc in _docs(db).values()} == {"succeeded", "sent"}
    finally:
        client.drop_database(db)
        client.drop_database(expected_db)


def test_a_quiet_batch_and_a_long_hold_write_what_was_held(control, mongo_uri):
    client = MongoClient(mongo_uri, tz_aware=True)
    db = client["hold_release"]
    try:
        _requested(control, 10)
        projector = Projector(CallHistory(), {"DeviceControl": control}, db)
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 20
        assert projector.holding() and _docs(db) == {}
        # No new events (the load has gone): the held calls are written, open, and the checkpoint moves on.
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 0
        assert not projector.holding()
        assert {doc["state"] for doc in _docs(db).values()} == {"sent"} and len(_docs(db)) == 10
        head = control.recorder.max_notification_id()
        assert ReadModelCatalogue(db).position("history", 1, "DeviceControl") == head
        # A call held longer than LONGEST_HOLD goes out even while the projector stays busy.
        client.drop_database(db)
        clock = [0.0]
        projector = Projector(CallHistory(), {"DeviceControl": control}, db)
        projector.clock = lambda: clock[0]
        _requested(control, 10)
        step_source([projector], "DeviceControl", hold=LONGEST_HOLD)  # 40 events, busy: 20 open calls held
        assert _docs(db) == {}
        clock[0] = LONGEST_HOLD + 0.01
        _requested(control, 10)
        step_source([projector], "DeviceControl", hold=LONGEST_HOLD)  # busy again: the old ones go, the new wait
        assert len(_docs(db)) == 20
    finally:
        client.drop_database(db)


def test_a_single_call_is_held_for_its_outcome_and_a_nudged_batch_holds_nothing(control, mongo_uri):
    """At a low rate too (a batch of one call's two events) the open call waits for its outcome, so it
    is written once, finished; a reader waiting for its write (hold 0: a nudge) gets it open at once."""
    client = MongoClient(mongo_uri, tz_aware=True)
    db = client["hold_small"]
    try:
        projector = Projector(CallHistory(), {"DeviceControl": control}, db)
        (quiet,) = _requested(control, 1)
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 2
        assert projector.holding() and _docs(db) == {}
        with acting_as("service:gateway"):
            assert control.decide([RecordAnswer(quiet, {"state": "on"}, {"value": {"state": "on"}})])
        assert step_source([projector], "DeviceControl", hold=LONGEST_HOLD) == 1
        assert not projector.holding()
        assert _docs(db)[quiet]["state"] == "succeeded"
        assert ReadModelCatalogue(db).position("history", 1, "DeviceControl") == control.recorder.max_notification_id()

        (nudged,) = _requested(control, 1)
        assert step_source([projector], "DeviceControl", hold=0.0) == 2
        assert not projector.holding() and _docs(db)[nudged]["state"] == "sent"
    finally:
        client.drop_database(db)


def test_a_created_document_is_inserted_and_a_replay_over_it_still_lands(mongo_uri):
    """A document's first write is an insert; where the document exists already (a replay after a
    crash between the write and the checkpoint) the insert collides and the guarded upsert is used:
    what the document does not reflect yet is applied, a later state is left alone."""
    client = MongoClient(mongo_uri, tz_aware=True)
    db = client["insert_first"]
    try:
        docs = db["docs"]
        first = BatchWriter(docs)
        first.set("call-1", 1, {"state": "queued", "api": "get_status"}, creates=True)
        first.set("call-2", 2, {"state": "queued"}, creates=True)
        assert first.flush() == 2
        assert docs.find_one({"_id": "call-1"}) == {"_id": "call-1", "state": "queued", "api": "get_status",
                                                     "position": 1}
        replay = BatchWriter(docs)  # events 1-4 again, merged: both inserts collide
        replay.set("call-1", 1, {"state": "queued", "api": "get_status"}, creates=True)
        replay.set("call-2", 2, {"state": "queued"}, creates=True)
        replay.set("call-1", 3, {"state": "succeeded"})
        replay.set("call-3", 4, {"state": "queued"}, creates=True)
        assert replay.flush() == 3
        assert docs.find_one({"_id": "call-1"})["state"] == "succeeded"
        assert docs.find_one({"_id": "call-1"})["position"] == 3
        assert docs.find_one({"_id": "call-2"})["position"] == 2
        assert docs.find_one({"_id": "call-3"})["state"] == "queued"
        older = BatchWriter(docs)  # an older state of a document that moved on is never written back
        older.set("call-1", 1, {"state": "queued"}, creates=True)
        older.flush()
        assert docs.find_one({"_id": "call-1"})["state"] == "succeeded"
        assert docs.count_documents({}) == 3
    finally:
        client.drop_database(db)
