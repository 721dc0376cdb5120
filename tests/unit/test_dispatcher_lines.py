"""The gateway's dispatcher with calls an API process sends itself (read from the log): slots, the
backstop time-out, held answers, and queued work behind a direct call. In-memory event store, no broker."""

from __future__ import annotations

from commands.context import acting_as
from commands.device_control import DeviceControl
from commands.domain.device_commands import QUEUED, SENT, TIMED_OUT
from gateways.devices.dispatcher import BACKSTOP_GRACE, Dispatcher
from gateways.devices.messages import DeviceAnswer
from gateways.devices.tally import ANSWERED, UNSOLICITED
from gateways.devices.unclaimed import CLAIM_WINDOW

DEVICE = {"device_id": "d" * 40, "owner": "alice", "name": "lamp"}


class Harness:
    def __init__(self):
        self.now = 1000.0
        self.control = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: self.now)
        self.published, self.outcomes = [], []
        self.dispatcher = Dispatcher(self.control, lambda *request: self.published.append(request),
                                     self.outcomes.append, lambda change: None, clock=lambda: self.now)
        self.dispatcher.assume_online([DEVICE["device_id"]])

    def api_sends(self, api="get_status", timeout=1.0):
        with acting_as("user:alice"):
            command = self.control.dispatch(DEVICE, api, None, timeout, None, "api:one")
        return command

    def log_shows(self, command):
        """What the gateway's log reader hands over for a command the API recorded born sent."""
        self.control.forget(command.id)
        with acting_as("service:gateway"):
            self.dispatcher.requested([self.control.command(command.id)])

    def answer(self, api, payload=b'{"value": "running"}'):
        with acting_as("service:gateway"):
            self.dispatcher.answered([DeviceAnswer(DEVICE["device_id"], api, payload, self.now)])

    def tick(self, seconds):
        self.now += seconds
        with acting_as("service:gateway"):
            self.dispatcher.tick()


def test_a_call_the_api_sent_is_never_sent_again_and_its_answer_is_left_to_the_api():
    h = Harness()
    command = h.api_sends()
    h.log_shows(command)
    h.answer("get_status")
    assert h.published == [] and h.outcomes == []
    assert h.control.command(command.id).status == SENT  # the API records it, not the gateway
    assert h.dispatcher.tally.totals == {ANSWERED: 1}


def test_queued_work_waits_behind_a_direct_call_until_the_log_shows_it_ended():
    h = Harness()
    direct = h.api_sends("get_status")
    h.log_shows(direct)
    with acting_as("user:alice"):
        queued = h.control.request(DEVICE, "get_status", None, timeout=1.0, ttl=60)
    with acting_as("service:gateway"):
        h.dispatcher.requested([h.control.command(queued.command_id)])
    assert h.published == []
    h.dispatcher.ended(str(direct.id), DEVICE["device_id"])
    assert [p[0] for p in h.published] == [queued.command_id]


def test_the_gateway_times_out_a_direct_call_only_after_the_grace_the_api_had():
    h = Harness()
    command = h.api_sends(timeout=1.0)
    h.log_shows(command)
    h.tick(1.0 + BACKSTOP_GRACE - 0.1)
    assert h.control.command(command.id).status == SENT
    h.tick(0.2)
    assert h.control.command(command.id).status == TIMED_OUT and h.outcomes[-1].status == TIMED_OUT


def test_an_answer_that_arrives_before_the_log_is_read_is_claimed_by_its_call():
    h = Harness()
    command = h.api_sends()
    h.answer("get_status")              # the broker is faster than the gateway's log reader
    h.log_shows(command)
    h.tick(CLAIM_WINDOW + 0.1)
    assert h.dispatcher.tally.totals == {ANSWERED: 1}


def test_an_answer_nobody_claims_is_counted_unsolicited_after_the_window():
    h = Harness()
    h.answer("get_rtc")
    h.tick(CLAIM_WINDOW - 0.5)
    assert h.dispatcher.tally.totals == {}
    h.tick(1.0)
    assert h.dispatcher.tally.totals == {UNSOLICITED: 1}


def test_a_request_the_broker_handed_back_to_the_api_is_queued_and_sent_by_the_gateway():
    h = Harness()
    command = h.api_sends()
    h.log_shows(command)
    command.return_to_queue()
    h.control.record(command)
    h.dispatcher.unrouted_elsewhere(str(command.id))
    assert [p[0] for p in h.published] == [str(command.id)]
    assert h.control.command(command.id).sent_by == "gateway"


def test_a_queued_call_of_an_offline_device_without_ttl_expires_at_once():
    h = Harness()
    with acting_as("user:alice"):
        queued = h.control.request({**DEVICE, "device_id": "e" * 40}, "get_status", None)
    with acting_as("service:gateway"):
        h.dispatcher.requested([h.control.command(queued.command_id)])
    assert h.control.command(queued.command_id).status == "expired" and h.published == []
    assert h.control.command(queued.command_id).status != QUEUED



def test_a_device_trigger_is_not_counted_unsolicited():
    # A device's own trigger_notification (the UART keyword) is the notifier's to record, not noise.
    h = Harness()
    h.answer("trigger_notification")
    h.answer("get_rtc")
    h.tick(CLAIM_WINDOW + 0.1)
    assert h.dispatcher.tally.totals == {UNSOLICITED: 1}
