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
from projections.history import HistoryProjection
from projections.runner import Projector
from projections.topics import ConsumedTopics
from queries.read_models import CHECKPOINTS, collection_name
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
