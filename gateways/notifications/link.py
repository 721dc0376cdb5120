"""The notifier's one pika connection: devices' `trigger_notification` messages in, device-to-device
deliveries out. Single-threaded, like the gateway's link: only the notifier loop touches it."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pika
from pika.exceptions import UnroutableError

from commands.notification_channels import Channel, Delivery, DeliveryFailed
from gateways.broker.topology import (NOTIFIER_TRIGGERS_QUEUE, TOPIC_EXCHANGE, TRIGGER_API, TRIGGERS_BINDING,
                                      durable_queue_arguments, parse_answer_routing_key, request_routing_key)
from gateways.devices.broker_link import BrokerAddress, close_quietly

log = logging.getLogger("iotcloud.notifier")
MAX_TRIGGER = 4096  # bytes of one trigger message: {"recipient", "message"} needs far less
PREFETCH = 200


@dataclass(frozen=True, slots=True)
class Trigger:
    """A device's `server/<id>/trigger_notification` message, acknowledged once it is recorded."""

    device_id: str
    payload: bytes
    delivery_tag: int


class NotifierLink:
    def __init__(self, address: BrokerAddress):
        self.connection = address.connect()
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=PREFETCH)
        # Durable: triggers published while the notifier is down wait for it.
        self.channel.queue_declare(NOTIFIER_TRIGGERS_QUEUE, durable=True,
                                   arguments=durable_queue_arguments(address.queue_type))
        self.channel.queue_bind(NOTIFIER_TRIGGERS_QUEUE, TOPIC_EXCHANGE, TRIGGERS_BINDING)
        self.channel.basic_consume(NOTIFIER_TRIGGERS_QUEUE, self._on_trigger)
        # Confirms make a device delivery synchronous: routed to the device's queue, or refused.
        self.channel.confirm_delivery()
        self.triggers: list[Trigger] = []

    def poll(self, timeout: float) -> None:
        self.connection.process_data_events(time_limit=max(0.0, timeout))

    def ack(self, trigger: Trigger) -> None:
        self.channel.basic_ack(trigger.delivery_tag)

    def publish_to_device(self, device_id: str, payload: bytes) -> None:
        self.channel.basic_publish(TOPIC_EXCHANGE, request_routing_key(device_id, TRIGGER_API), payload,
                                   pika.BasicProperties(content_type="application/json", delivery_mode=1),
                                   mandatory=True)

    def close(self) -> None:
        close_quietly(self.connection)

    def _on_trigger(self, channel, method, properties, body: bytes) -> None:
        parsed = parse_answer_routing_key(method.routing_key)
        if parsed is None or len(body) > MAX_TRIGGER:
            log.warning("dropped a trigger message", extra={"routing_key": method.routing_key[:120],
                                                          "bytes": len(body)})
            channel.basic_ack(method.delivery_tag)
            return
        self.triggers.append(Trigger(parsed[0], bytes(body), method.delivery_tag))


class DeviceChannel(Channel):
    """Delivers to `<recipient id>/trigger_notification` (AMQP `<id>.trigger_notification`) as
    `{"recipient": <id>, "message": ...}`: the device sees itself as the recipient and shows it."""

    provider = "broker"

    def __init__(self, link_of):
        self._link_of = link_of  # the current NotifierLink, or None while reconnecting

    def deliver(self, delivery: Delivery) -> str:
        link = self._link_of()
        if link is None:
            raise DeliveryFailed("no broker connection")
        payload = json.dumps({"recipient": delivery.recipient, "message": delivery.message}).encode()
        try:
            link.publish_to_device(delivery.recipient, payload)
        except UnroutableError:
            raise DeliveryFailed("the recipient device is not connected") from None
        return delivery.reference
