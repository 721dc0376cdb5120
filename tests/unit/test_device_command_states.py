"""The DeviceCommand state machine on its own: every legal transition, and every illegal one refused
before anything is recorded (no broker, no read store: the in-memory event store)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.device_decisions import Expire, MarkSent, RecordAnswer, RejectAnswer, ReturnToQueue, TimeOut
from commands.domain.device_commands import (EXPIRED, FAILED, QUEUED, SENT, SUCCEEDED, TIMED_OUT, DeviceCommand,
                                             IllegalTransition)

DEVICE = {"device_id": "c" * 40, "owner": "alice", "name": "kitchen"}


def new_command() -> DeviceCommand:
    with acting_as("user:alice"):
        return DeviceCommand(device_id=DEVICE["device_id"], owner="alice", device_name="kitchen", api="get_status",
                             params={}, timeout=1.0, expires_at=0.0, correlate=False)


def sent() -> DeviceCommand:
    command = new_command()
    command.mark_sent(10.0, "gateway")
    return command


# Each intent, the states it is allowed from, and the state it leaves the command in.
INTENTS = {
    "mark_sent": (lambda c: c.mark_sent(1.0, "gateway"), {QUEUED}, SENT),
    "record_answer": (lambda c: c.record_answer(1, {"value": 1}), {SENT}, SUCCEEDED),
    "reject_answer": (lambda c: c.reject_answer("bad", "x"), {SENT}, FAILED),
    "return_to_queue": (lambda c: c.return_to_queue(), {SENT}, QUEUED),
    "time_out": (lambda c: c.time_out(), {SENT}, TIMED_OUT),
    "expire": (lambda c: c.expire("offline"), {QUEUED}, EXPIRED),
}
REACH = {QUEUED: [], SENT: ["mark_sent"], SUCCEEDED: ["mark_sent", "record_answer"],
         FAILED: ["mark_sent", "reject_answer"], TIMED_OUT: ["mark_sent", "time_out"], EXPIRED: ["expire"]}


@pytest.mark.parametrize("start", list(REACH))
@pytest.mark.parametrize("intent", list(INTENTS))
def test_each_intent_is_allowed_only_from_its_states(start, intent):
    command = new_command()
    with acting_as("service:test"):
        for step in REACH[start]:
            INTENTS[step][0](command)
        assert command.status == start
        carry_out, allowed, after = INTENTS[intent]
        before = len(command.pending_events)
        if start in allowed:
            carry_out(command)
            assert command.status == after and len(command.pending_events) == before + 1
        else:
            with pytest.raises(IllegalTransition):
                carry_out(command)
            assert command.status == start and len(command.pending_events) == before


def test_a_replayed_command_has_the_same_state_as_the_live_one():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with acting_as("service:test"):
        command = control.dispatch(DEVICE, "get_gpio", {"number": 3}, 2.0, 0, "api:test")
        command.record_answer(1, {"number": 3, "value": 1})
        control.record(command)
    control.forget(command.id)
    replayed = control.command(command.id)
    assert (replayed.status, replayed.result, replayed.sent_by, replayed.version) == (SUCCEEDED, 1, "api:test", 2)


def test_dispatch_records_the_call_born_sent_in_one_event():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: 100.0)
    with acting_as("user:alice"):
        command = control.dispatch(DEVICE, "get_status", None, 2.0, None, "api:one")
    topics = [n.topic.rsplit(".", 1)[-1] for n in control.recorder.select_notifications(start=1, limit=10)]
    assert topics == ["Requested"] and command.status == SENT and command.answer_deadline == 102.0
    control.forget(command.id)
    replayed = control.command(command.id)
    assert (replayed.status, replayed.sent_at, replayed.sent_by, replayed.version) == (SENT, 100.0, "api:one", 1)
    with pytest.raises(IllegalTransition):
        replayed.mark_sent(101.0, "gateway")  # never sent twice


def test_requested_events_recorded_before_born_sent_existed_still_replay_queued():
    """Stores hold Requested events without `sent_at` and `sent_by`: they replay as queued calls."""
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with acting_as("user:alice"):
        command_id = control.request(DEVICE, "get_status", None).command_id
    recorder = control.recorder
    stored = recorder._stored_events[0]
    state = json.loads(stored.state)
    assert state.pop("sent_at") is None and state.pop("sent_by") is None
    recorder._stored_events[0] = dataclasses.replace(stored, state=json.dumps(state).encode())
    control.forget(command_id)
    older = control.command(command_id)
    assert (older.status, older.sent_at, older.sent_by) == (QUEUED, None, None)
    older.mark_sent(5.0, "gateway")
    assert older.answer_deadline == 5.0 + older.timeout


def test_decide_skips_what_the_command_refuses_and_records_the_rest():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with acting_as("user:alice"):
        queued = control.request(DEVICE, "get_status", None).command_id
        in_flight = str(control.dispatch(DEVICE, "get_rtc", None, None, None, "api:one").id)
    with acting_as("service:gateway"):
        changed = control.decide([TimeOut(queued), Expire(queued, "offline"), RecordAnswer(in_flight, 5, {}),
                                  RejectAnswer(in_flight, "late", ""), MarkSent("not-a-uuid", 1.0, "g")])
    assert sorted(c.status for c in changed) == [EXPIRED, SUCCEEDED]
    assert control.command(queued).status == EXPIRED and control.command(in_flight).result == 5


def test_a_decision_that_lost_a_race_with_another_writer_is_dropped():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    other = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    other.recorder = control.recorder  # two processes on one store
    other.events.recorder = control.recorder
    with acting_as("user:alice"):
        command_id = str(control.dispatch(DEVICE, "get_status", None, None, None, "api:one").id)
    with acting_as("service:gateway"):
        stale = control.command(command_id)           # cached at Sent
        other.decide([TimeOut(command_id)])           # the other writer times it out first
        assert control.decide([ReturnToQueue(command_id)]) == []
    control.forget(command_id)
    assert control.command(command_id).status == TIMED_OUT and stale.status == SENT


def test_an_outcome_recorded_later_lands_after_the_caller_moved_on():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    with acting_as("user:alice"):
        command = control.dispatch(DEVICE, "get_status", None, None, None, "api:one")
        command.record_answer("running", {"value": "running"})
        control.record_later(command).result(timeout=5)
    control.forget(command.id)
    assert control.command(command.id).result == "running"
