"""One libpyiotcloud device over AMQP(S): ``python -m simulators.amqp_device --credentials device.json``.

Topology (protocol reference §2.1): exchange ``amq.topic`` (declared passively: it always
exists and a device has no configure permission on it), queue
``mqtt-subscription-<id>qos1`` (auto_delete, the seed's declaration) bound with
``<id>.#``; replies are published to ``server.<id>.<api>`` with publisher confirms (the
AMQP counterpart of QoS 1).  With TLS the device logs in by its certificate CN
(SASL EXTERNAL); with ``"tls": false`` it uses username/password (default guest/guest).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

import pika
import pika.exceptions

from ._cli import add_credentials_arguments, credentials_from_args, install_stop_handlers, setup_logging
from .credentials import Credentials
from .device import DEFAULT_NOTIFICATION_RECIPIENT, Device
from .mqtt_engine import Backoff

log = logging.getLogger("simulators.amqp")

EXCHANGE = "amq.topic"
HEARTBEAT = 30


def queue_name(device_id: str) -> str:
    return f"mqtt-subscription-{device_id}qos1"


def connection_parameters(creds: Credentials, heartbeat: int = HEARTBEAT) -> pika.ConnectionParameters:
    common = dict(host=creds.host, port=creds.port("amqp"), heartbeat=heartbeat, connection_attempts=1,
                  socket_timeout=10, blocked_connection_timeout=60)
    if creds.tls:
        # PLAIN over TLS for a device registered for password login (as libpyiotcloud's AMQP device), else
        # EXTERNAL: the broker reads the device id from the client certificate.
        login = (pika.PlainCredentials(creds.username, creds.password) if creds.password_login
                 else pika.credentials.ExternalCredentials())
        return pika.ConnectionParameters(
            ssl_options=pika.SSLOptions(creds.ssl_context(), server_hostname=creds.host),
            credentials=login,
            **common,
        )
    return pika.ConnectionParameters(
        credentials=pika.PlainCredentials(creds.username or "guest", creds.password or "guest"),
        **common,
    )


class AmqpDevice:
    def __init__(self, creds: Credentials, *, notification_recipient: str | None = None,
                 heartbeat: int = HEARTBEAT, device: Device | None = None) -> None:
        self.creds = creds
        self.id = creds.device_id
        recipient = notification_recipient or creds.notification_recipient or DEFAULT_NOTIFICATION_RECIPIENT
        self.device = device or Device(creds.device_id, notification_recipient=recipient)
        self.params = connection_parameters(creds, heartbeat)  # builds the SSL context once (validates the PEMs)
        self.backoff = Backoff()
        self._stop = threading.Event()
        self.requests = self.publishes = 0

    def stop(self) -> None:
        """Async-signal-safe enough: sets an Event; the loop notices within 0.5 s."""
        self._stop.set()

    def _declare(self, connection: pika.BlockingConnection):
        channel = connection.channel()
        channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True, passive=True)
        queue = queue_name(self.id)
        try:
            channel.queue_declare(queue, auto_delete=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:  # PRECONDITION_FAILED: exists with other flags (e.g. made durable by MQTT)
                raise
            log.info("%s: queue %s exists with other flags; using it as is", self.id, queue)
            channel = connection.channel()
            channel.queue_declare(queue, passive=True)
        channel.queue_bind(queue, EXCHANGE, routing_key=f"{self.id}.#")
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=50)
        channel.basic_consume(queue, self._on_message, auto_ack=False)
        return channel

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        api = self.device.request_api(method.routing_key, ".")
        if api is None:
            log.debug("%s: ignoring message with routing key %s", self.id, method.routing_key)
        else:
            self.requests += 1
            try:
                publishes = self.device.handle(api, body)
            except Exception:
                log.exception("%s: error handling %s", self.id, method.routing_key)
                publishes = []
            for pub in publishes:
                channel.basic_publish(EXCHANGE, self.device.reply_topic(pub.api, "."), pub.payload,
                                      properties=pika.BasicProperties(content_type="application/json"))
                self.publishes += 1
        channel.basic_ack(method.delivery_tag)

    def run(self) -> None:
        while not self._stop.is_set():
            connection = None
            try:
                connection = pika.BlockingConnection(self.params)
                self._declare(connection)
                self.backoff.reset()
                log.info("%s: connected to %s:%s, consuming %s (bound %s.#)", self.id, self.creds.host,
                         self.creds.port("amqp"), queue_name(self.id), self.id)
                while not self._stop.is_set():
                    connection.process_data_events(time_limit=0.5)  # blocks in select; no busy loop
            except (pika.exceptions.AMQPError, OSError) as exc:
                if self._stop.is_set():
                    break
                delay = self.backoff.next()
                log.warning("%s: AMQP connection failed or lost (%r); reconnecting in %.1f s", self.id, exc, delay)
                self._stop.wait(delay)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()
                    except Exception:
                        pass
        log.info("%s: stopped: %d requests, %d publishes", self.id, self.requests, self.publishes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.amqp_device",
        description="Simulate one libpyiotcloud device over AMQP(S) (amq.topic, SASL EXTERNAL by client cert): "
                    "answers <id>.<api> requests on server.<id>.<api>.",
    )
    add_credentials_arguments(parser, "amqp")
    parser.add_argument("--heartbeat", type=int, default=HEARTBEAT, help="AMQP heartbeat in seconds (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    creds = credentials_from_args(parser, args, "amqp")
    try:
        dev = AmqpDevice(creds, notification_recipient=args.notification_recipient, heartbeat=args.heartbeat)
    except Exception as exc:
        parser.error(str(exc))
    install_stop_handlers(dev.stop)
    dev.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
