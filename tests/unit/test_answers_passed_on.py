"""The API's broker link passes on every device answer its short path did not take, with its routing
key, to the gateway's exchange; the ones it took go nowhere else (pika's channel and delivery frames
stood in for by plain objects; the link's own code runs unchanged)."""

from __future__ import annotations

from types import SimpleNamespace

from gateways.broker.topology import FORWARDED_ANSWERS_EXCHANGE, RESULTS_EXCHANGE, SHARED_EXCHANGES, TOPIC_EXCHANGE
from gateways.http.outcomes import CommandOutcomes

DEVICE = "ab" * 20


class Channel:
    def __init__(self):
        self.published = []

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        self.published.append((exchange, routing_key, body, properties))


def link(take):
    outcomes = CommandOutcomes(None)
    outcomes.listen(take, lambda command_id: None, lambda command_id: None)
    return outcomes


def deliver(outcomes, channel, routing_key, body, exchange=TOPIC_EXCHANGE, properties="props"):
    outcomes._on_message(channel, SimpleNamespace(exchange=exchange, routing_key=routing_key), properties, body)


def test_an_answer_taken_by_a_call_is_not_passed_on():
    channel, taken = Channel(), []
    outcomes = link(lambda device_id, api, body: taken.append((device_id, api, body)) or True)
    deliver(outcomes, channel, f"server.{DEVICE}.get_status", b'{"value": 1}')
    assert taken == [(DEVICE, "get_status", b'{"value": 1}')] and channel.published == []


def test_an_answer_no_call_took_goes_to_the_gateway_with_its_routing_key_and_properties():
    channel = Channel()
    outcomes = link(lambda device_id, api, body: False)
    deliver(outcomes, channel, f"server.{DEVICE}.get_gpio", b'{"value": 2}', properties="qos1")
    assert channel.published == [(FORWARDED_ANSWERS_EXCHANGE, f"server.{DEVICE}.get_gpio", b'{"value": 2}', "qos1")]


def test_a_message_on_a_topic_that_names_no_api_goes_to_the_gateway_untouched():
    channel, taken = Channel(), []
    outcomes = link(lambda *answer: taken.append(answer) or True)
    deliver(outcomes, channel, f"server.{DEVICE}.a.b", b"x" * 10)
    assert taken == []
    assert channel.published == [(FORWARDED_ANSWERS_EXCHANGE, f"server.{DEVICE}.a.b", b"x" * 10, "props")]


def test_an_outcome_is_never_passed_on():
    channel = Channel()
    outcomes = link(lambda *answer: False)
    deliver(outcomes, channel, "", b'{"command_id": "c1", "status": "succeeded"}', exchange=RESULTS_EXCHANGE)
    assert channel.published == []


def test_only_the_api_may_write_the_exchange_and_only_the_gateway_read_it():
    exchange = SHARED_EXCHANGES[FORWARDED_ANSWERS_EXCHANGE]
    assert (exchange.publisher, exchange.consumer) == ("iotcloud-api", "iotcloud-gateway")
