"""One hostile answer costs only itself: the dispatcher records the others of the same batch and
counts every message (real DeviceControl on the in-memory event store, no broker)."""

from __future__ import annotations

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.domain.device_commands import FAILED, SUCCEEDED
from gateways.devices.dispatcher import Dispatcher
from gateways.devices.unclaimed import CLAIM_WINDOW
from gateways.devices.messages import DeviceAnswer
from gateways.devices.tally import ANSWERED, MALFORMED, REJECTED, UNSOLICITED

HOSTILE_ID = "a" * 40
CALM_ID = "b" * 40
NESTED = b'{"value": ' + b"[" * 20000 + b"]" * 20000 + b"}"


def test_a_deeply_nested_answer_fails_its_call_and_the_rest_of_the_batch_is_recorded():
    control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    published, now = [], [1000.0]
    dispatcher = Dispatcher(control, lambda *request: published.append(request), lambda outcome: None,
                            lambda change: None, clock=lambda: now[0])
    dispatcher.assume_online([HOSTILE_ID, CALM_ID])
    with acting_as("user:test"):
        hostile = control.request({"device_id": HOSTILE_ID, "owner": "o", "name": "h"}, "get_status", None)
        calm = control.request({"device_id": CALM_ID, "owner": "o", "name": "c"}, "get_status", None)
    with acting_as("service:gateway"):
        dispatcher.requested([control.command(hostile.command_id), control.command(calm.command_id)])
        assert len(published) == 2
        dispatcher.answered([
            DeviceAnswer(HOSTILE_ID, "get_status", NESTED, 0.0),                  # the call in flight
            DeviceAnswer(HOSTILE_ID, "get_gpio", NESTED, 0.0),                    # no call waiting
            DeviceAnswer(HOSTILE_ID, "set_rtc", b'{"value": 1}', 0.0),            # no call waiting
            DeviceAnswer(CALM_ID, "get_status", b'{"value": "running"}', 0.0),
        ])
        # Answers no call claims may still belong to an API's call the log has not shown yet.
        assert dispatcher.tally.totals == {REJECTED: 1, ANSWERED: 1}
        now[0] += CLAIM_WINDOW
        dispatcher.tick()
    rejected = control.command(hostile.command_id)
    assert rejected.status == FAILED and "deeper" in rejected.error
    assert control.command(calm.command_id).status == SUCCEEDED
    assert dispatcher.tally.totals == {REJECTED: 1, MALFORMED: 1, UNSOLICITED: 1, ANSWERED: 1}


def test_the_tally_logs_one_summary_per_interval_naming_each_refusing_device(caplog):
    from gateways.devices.tally import BAD_TOPIC, MessageTally
    now = [0.0]
    tally = MessageTally(clock=lambda: now[0], every=5.0)
    for _ in range(1000):
        tally.count(HOSTILE_ID, MALFORMED, "answer nests deeper than 32")
    tally.count(HOSTILE_ID, BAD_TOPIC, "published on server.x.a.b")
    tally.count(CALM_ID, ANSWERED)
    with caplog.at_level("WARNING", logger="iotcloud.gateway"):
        tally.summarise()          # within the interval: nothing yet
        now[0] = 5.0
        tally.summarise()
        tally.summarise(force=True)  # nothing refused since: nothing logged
    [summary] = [r for r in caplog.records if r.msg == "device messages refused"]
    assert summary.devices == {HOSTILE_ID: {MALFORMED: 1000, BAD_TOPIC: 1, "example": "answer nests deeper than 32"}}
    assert summary.totals == {MALFORMED: 1000, BAD_TOPIC: 1, ANSWERED: 1}
