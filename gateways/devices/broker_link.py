"""The gateway's one pika connection: queues it consumes, exchanges it publishes to.

pika's BlockingConnection is single-threaded: only the gateway loop touches it. Broker frames
become DeviceAnswer / PresenceChange value objects here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass, field

import pika

from commands.domain.device_ids import DEVICE_ID_PATTERN as DEVICE_ID
from gateways.broker.topology import (ANSWERS_BINDING, ANSWERS_QUEUE, CLASSIC, CONTROL_EXCHANGE, EVENT_EXCHANGE,
                                      FORWARDED_ANSWERS_EXCHANGE, PRESENCE_QUEUE, RESULTS_EXCHANGE, TOPIC_EXCHANGE,
                                      WAKE_QUEUE, declare_shared_exchanges, durable_queue_arguments,
                                      parse_answer_routing_key, request_routing_key)
from gateways.devices.messages import CommandOutcome, DeviceAnswer, PresenceChange
from gateways.devices.protocol import MAX_ANSWER
from gateways.devices.tally import BAD_TOPIC, MessageTally

log = logging.getLogger("iotcloud.gateway")

WAKE_COMMANDS = "commands"  # new device calls in the store
WAKE_DEVICES = "devices"    # a device was unregistered: close its connections


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    ssl_context: ssl.SSLContext | None
    server_hostname: str = "localhost"
    name: str = "iotcloud-gateway"
    # The other nodes of a RabbitMQ cluster, (host, AMQPS port), tried in order when `host` refuses:
    # a service whose node dies reconnects to the next one (pika takes a list of parameters).
    alternates: tuple[tuple[str, int], ...] = ()
    queue_type: str = CLASSIC  # of the platform's durable queues: quorum on a cluster (topology.py)
    # (username, password) for a PLAIN login without TLS: a service on the embedded node's loopback
    # listener. Never shown: it is as secret as a certificate's key.
    login: tuple[str, str] | None = field(default=None, repr=False)

    def parameters(self, host: str | None = None, port: int | None = None) -> pika.ConnectionParameters:
        ssl_options = pika.SSLOptions(self.ssl_context, self.server_hostname) if self.ssl_context else None
        if self.ssl_context:
            credentials = pika.credentials.ExternalCredentials()
        else:
            credentials = pika.PlainCredentials(*(self.login or ("guest", "guest")))
        return pika.ConnectionParameters(host=host or self.host, port=port or self.port, ssl_options=ssl_options,
                                         credentials=credentials, heartbeat=20, blocked_connection_timeout=30,
                                         connection_attempts=1, socket_timeout=5,
                                         client_properties={"connection_name": self.name})

    def all_parameters(self) -> list[pika.ConnectionParameters]:
        """This node first, then every alternate: what `pika.BlockingConnection` tries in turn."""
        return [self.parameters(), *(self.parameters(host, port) for host, port in self.alternates)]

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.all_parameters())


class GatewayLink:
    """Consumes answers, presence events and wake-ups into lists; publishes requests and outcomes."""

    def __init__(self, address: BrokerAddress, clock=time.time, tally: MessageTally | None = None,
                 answers_via_api: bool = False):
        """`answers_via_api`: an API process sends calls itself (its short path) and reads every device
        answer; it passes on the ones it did not take, so this queue is bound to those alone. Otherwise
        (several API processes, the short path off) this queue takes every answer from the devices."""
        self._clock = clock
        self._tally = tally or MessageTally()
        self.connection = address.connect()
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=2000)
        declare_shared_exchanges(self.channel)
        self.answers: list[DeviceAnswer] = []
        self.presence: list[PresenceChange] = []
        self.wake_reasons: set[str] = set()  # WAKE_COMMANDS and/or WAKE_DEVICES since the last loop
        self._connection_users: dict[str, str] = {}
        self._acks: list[int] = []
        ch = self.channel
        ch.queue_declare(ANSWERS_QUEUE, durable=True, arguments=durable_queue_arguments(address.queue_type))
        ch.queue_bind(ANSWERS_QUEUE, FORWARDED_ANSWERS_EXCHANGE)
        if answers_via_api:
            # The binding is durable: a run without the short path may have left it. Unbinding one that
            # does not exist is no error.
            ch.queue_unbind(ANSWERS_QUEUE, TOPIC_EXCHANGE, ANSWERS_BINDING)
        else:
            ch.queue_bind(ANSWERS_QUEUE, TOPIC_EXCHANGE, ANSWERS_BINDING)
        ch.queue_declare(PRESENCE_QUEUE, durable=False, auto_delete=True)
        for key in ("connection.created", "connection.closed"):
            ch.queue_bind(PRESENCE_QUEUE, EVENT_EXCHANGE, key)
        ch.queue_declare(WAKE_QUEUE, durable=False, auto_delete=True)
        ch.queue_bind(WAKE_QUEUE, CONTROL_EXCHANGE)
        ch.basic_consume(ANSWERS_QUEUE, self._on_answer)
        ch.basic_consume(PRESENCE_QUEUE, self._on_presence, auto_ack=True)
        ch.basic_consume(WAKE_QUEUE, self._on_wake, auto_ack=True)
        # Requests are published `mandatory`: the broker hands back one it cannot route (the device has
        # not subscribed yet) and we queue it again. No publisher confirms: waiting a broker round
        # trip per request would serialise the loop; a request lost in a broker crash times out.
        self.unrouted: list[str] = []
        self.channel.add_on_return_callback(self._on_return)

    def poll(self, timeout: float) -> None:
        self.connection.process_data_events(time_limit=max(0.0, timeout))

    def ack_answers(self) -> None:
        """Acknowledges answers only after their outcome was recorded in the event store."""
        if self._acks:
            self.channel.basic_ack(self._acks[-1], multiple=True)
            self._acks.clear()

    def publish_request(self, command_id: str, device_id: str, api: str, payload: bytes, timeout: float) -> None:
        """Publishes to `<id>.<api>`; the message expires with the command so a late device never runs it."""
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=command_id,
                                          expiration=str(max(1, int(timeout * 1000))))
        self.channel.basic_publish(TOPIC_EXCHANGE, request_routing_key(device_id, api), payload, properties,
                                   mandatory=True)

    def _on_return(self, channel, method, properties, body) -> None:
        if isinstance(properties.message_id, str) and properties.message_id:
            self.unrouted.append(properties.message_id)

    def publish_outcome(self, outcome: CommandOutcome) -> None:
        self.channel.basic_publish(RESULTS_EXCHANGE, "", json.dumps(outcome.as_dict(), default=str).encode(),
                                   pika.BasicProperties(content_type="application/json", delivery_mode=1))

    def close(self) -> None:
        close_quietly(self.connection)

    # Each consumer callback handles one message; whatever it raises is logged and costs that message
    # only (an exception escaping into pika would drop the connection and every unacked answer).

    def _on_answer(self, channel, method, properties, body: bytes) -> None:
        self._acks.append(method.delivery_tag)  # acked after the loop recorded what it holds
        try:
            parsed = parse_answer_routing_key(method.routing_key)
            if parsed is None:
                # Only device <id> may write server.<id>.#, so the second word names the sender.
                sender = method.routing_key.split(".")[1:2]
                sender = sender[0] if sender and DEVICE_ID.match(sender[0]) else "unknown"
                self._tally.count(sender, BAD_TOPIC, f"published on {method.routing_key[:120]}")
                return
            # Past the limit only the length matters: keep one byte more, not the whole body.
            self.answers.append(DeviceAnswer(parsed[0], parsed[1], bytes(body[:MAX_ANSWER + 1]), self._clock()))
        except Exception:  # noqa: BLE001
            log.exception("dropped a message on the answers queue")

    def _on_presence(self, channel, method, properties, body: bytes) -> None:
        try:
            self._presence_change(method.routing_key, properties.headers or {})
        except Exception:  # noqa: BLE001
            log.exception("dropped a presence event")

    def _presence_change(self, routing_key: str, headers: dict) -> None:
        name = _text(headers.get("name"))
        if routing_key == "connection.created":
            user = _text(headers.get("user"))
            if not name or not user:
                return
            self._connection_users[name] = user
            self.presence.append(PresenceChange(user, name, True, _text(headers.get("protocol")), self._clock(),
                                                certificate_serial(headers.get("peer_cert_subject"))))
        else:
            user = self._connection_users.pop(name, None) or _text(headers.get("user"))
            if user:
                self.presence.append(PresenceChange(user, name, False, "", self._clock()))

    def _on_wake(self, channel, method, properties, body: bytes) -> None:
        self.wake_reasons.add(WAKE_DEVICES if body == WAKE_DEVICES.encode() else WAKE_COMMANDS)


def close_quietly(connection) -> None:
    try:
        if connection.is_open:
            connection.close()
    except Exception:  # noqa: BLE001 - closing a dead connection
        pass


class Reconnecting:
    """Runs a broker session again after it fails: 0.5 s doubling to 5 s between tries, back to
    0.5 s once a session says it is `connected()`. A lost broker is a warning; anything else is
    logged with its traceback (the process outlives one bad message or a store outage)."""

    def __init__(self, what: str, logger: logging.Logger):
        self._what, self._log = what, logger
        self.backoff = 0.5

    def connected(self) -> None:
        self._log.info("%s connected to the broker", self._what)
        self.backoff = 0.5

    def run(self, stop, session) -> None:
        while not stop.is_set():
            try:
                session()
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._log.warning("broker connection lost (%s); reconnecting in %.1f s", type(exc).__name__,
                                  self.backoff)
            except Exception:  # noqa: BLE001
                self._log.exception("%s loop failed; restarting it", self._what)
            stop.wait(self.backoff)
            self.backoff = min(self.backoff * 2, 5.0)


def certificate_serial(subject) -> str | None:
    """The serial a client certificate's subject names, as the broker writes the subject in its events
    (`SERIALNUMBER=<hex>,CN=<id>`; commands/pki.py puts it there): "" for a subject without one, None for a
    connection without a certificate. The broker escapes "," and "+" inside values, which a serial has not."""
    subject = _text(subject)
    if not subject:
        return None
    for part in subject.replace("+", ",").split(","):
        key, _, value = part.partition("=")
        if key.strip().upper() in ("SERIALNUMBER", "2.5.4.5"):
            return value.strip().lower()
    return ""


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value is not None else ""
