"""The REST process's broker link: a queue of its own receives every outcome the gateway publishes
(waiting requests are woken by command id) and, for calls the API sends itself, the devices'
answers and the requests the broker could not route."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict

import pika

from gateways.broker.topology import (ANSWERS_BINDING, API_QUEUE_PREFIX, CONTROL_EXCHANGE, FORWARDED_ANSWERS_EXCHANGE,
                                      RESULTS_EXCHANGE, TOPIC_EXCHANGE, declare_shared_exchanges,
                                      parse_answer_routing_key, request_routing_key)
from gateways.devices.broker_link import WAKE_COMMANDS, BrokerAddress
from gateways.devices.protocol import MAX_ANSWER
from gateways.untrusted_json import MAX_DEPTH, MalformedPayload, load_bounded

log = logging.getLogger("iotcloud.http.outcomes")
RECENT = 20000
# An outcome carries one answer's value (escaping may grow it six times) one level below its own fields.
MAX_OUTCOME = 8 * MAX_ANSWER
MAX_OUTCOME_DEPTH = MAX_DEPTH + 1


class _Waiter:
    __slots__ = ("event", "outcome")

    def __init__(self):
        self.event = threading.Event()
        self.outcome: dict | None = None


class CommandOutcomes:
    """Runs one pika connection in a daemon thread; everything else talks to it thread-safely."""

    def __init__(self, address: BrokerAddress | None):
        self._address = address
        self._lock = threading.Lock()
        self._waiters: dict[str, _Waiter] = {}
        self._recent: OrderedDict[str, dict] = OrderedDict()
        self._connection = None
        self._channel = None
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_answer = self._on_return = self._on_outcome = None

    def listen(self, on_answer, on_return, on_outcome) -> None:
        """Also receives every device answer (`on_answer(device_id, api, body)`, true when it took the
        answer; the others are passed on to the gateway), requests handed back
        unrouted (`on_return(command_id)`) and hears of every outcome (`on_outcome(command_id)`);
        all are called from the link's thread. Call before `start`."""
        self._on_answer, self._on_return, self._on_outcome = on_answer, on_return, on_outcome

    def publish_request(self, command_id: str, device_id: str, api: str, payload: bytes, timeout: float,
                        then=None) -> None:
        """Publishes to `<id>.<api>` (`mandatory`: an unroutable request comes back to `on_return`);
        it expires with the call, so a device that connects late never runs it. `then()` runs on the
        link's thread right after the publish, before any later answer is handled. Raises if not connected."""
        connection, channel = self._connection, self._channel
        if connection is None or channel is None:
            raise ConnectionError("no broker connection")
        properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=command_id,
                                          expiration=str(max(1, int(timeout * 1000))))
        routing_key = request_routing_key(device_id, api)
        # Through the blocking channel's own asynchronous channel: BlockingChannel.basic_publish runs
        # the I/O loop until this one message is on the socket, once per call; here the frames join
        # the output buffer, and requests published together leave in one write at the loop's next
        # turn (API and broker CPU per saturated call both lower: docs/benchmarks.md, issue 7 step 60).
        # The link's thread runs this callback and every answer after it, so the order holds.
        publish_frames = channel._impl.basic_publish
        def publish():
            publish_frames(TOPIC_EXCHANGE, routing_key, payload, properties, mandatory=True)
            if then is not None:
                then()
        connection.add_callback_threadsafe(publish)

    def start(self) -> "CommandOutcomes":
        if self._address is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="command-outcomes", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        connection = self._connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(connection.close)
            except Exception:  # noqa: BLE001
                pass

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def expect(self, command_id: str) -> _Waiter:
        """Registers interest before the gateway is woken, so a fast outcome is never missed."""
        waiter = _Waiter()
        with self._lock:
            seen = self._recent.get(command_id)
            if seen is not None:
                waiter.outcome = seen
                waiter.event.set()
            else:
                self._waiters[command_id] = waiter
        return waiter

    def wait(self, command_id: str, waiter: _Waiter, timeout: float) -> dict | None:
        waiter.event.wait(timeout)
        with self._lock:
            self._waiters.pop(command_id, None)
        return waiter.outcome

    def wake_gateway(self, reason: str = WAKE_COMMANDS) -> None:
        connection, channel = self._connection, self._channel
        if connection is None or channel is None:
            return  # the gateway's backup poll (1 s) picks the command up
        try:
            connection.add_callback_threadsafe(
                lambda: channel.basic_publish(CONTROL_EXCHANGE, "", reason.encode(), pika.BasicProperties(delivery_mode=1)))
        except Exception:  # noqa: BLE001 - a closed connection: the backup poll still delivers
            log.debug("could not wake the gateway", exc_info=True)

    def _deliver(self, outcome: dict) -> None:
        command_id = outcome.get("command_id")
        if not isinstance(command_id, str):
            return
        with self._lock:
            self._recent[command_id] = outcome
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
            waiter = self._waiters.pop(command_id, None)
        if waiter is not None:
            waiter.outcome = outcome
            waiter.event.set()
        if self._on_outcome is not None:
            self._on_outcome(command_id)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                connection = self._address.connect()
                channel = connection.channel()
                declare_shared_exchanges(channel)
                queue = f"{API_QUEUE_PREFIX}{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                channel.queue_declare(queue, exclusive=True, auto_delete=True)
                channel.queue_bind(queue, RESULTS_EXCHANGE)
                if self._on_answer is not None:
                    channel.queue_bind(queue, TOPIC_EXCHANGE, ANSWERS_BINDING)
                    channel.add_on_return_callback(self._returned)
                channel.basic_consume(queue, self._on_message, auto_ack=True)
                self._connection, self._channel = connection, channel
                self._connected.set()
                backoff = 0.5
                channel.start_consuming()
            except Exception as exc:  # noqa: BLE001 - reconnect whatever happened
                if not self._stop.is_set():
                    log.warning("outcome link to the broker lost (%s); retrying", type(exc).__name__)
            finally:
                self._connected.clear()
                self._connection = self._channel = None
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        """One outcome; whatever it holds or raises costs only itself (an exception escaping into
        pika would drop the connection, and with it every outcome in flight)."""
        try:
            if method.exchange == TOPIC_EXCHANGE:
                if not self._answered(method.routing_key, body):
                    # Not a call of ours: the gateway's, or nobody's (it counts those). Only here, on the
                    # link's thread, so a device's answers reach it in the order they came.
                    channel.basic_publish(FORWARDED_ANSWERS_EXCHANGE, method.routing_key, body, properties)
                return
            outcome = load_bounded(body, MAX_OUTCOME, "outcome", MAX_OUTCOME_DEPTH)
            if not isinstance(outcome, dict):
                raise MalformedPayload("outcome is not a JSON object")
            self._deliver(outcome)
        except MalformedPayload as problem:
            log.warning("dropped an outcome: %s", problem)
        except Exception:  # noqa: BLE001
            log.exception("dropped an outcome")

    def _answered(self, routing_key: str, body: bytes) -> bool:
        """Whether the answer was taken by a call this process sent."""
        parsed = parse_answer_routing_key(routing_key)
        if parsed is None or self._on_answer is None:
            return False
        # Past the limit only the length matters: keep one byte more, not the whole body.
        return bool(self._on_answer(parsed[0], parsed[1], bytes(body[:MAX_ANSWER + 1])))

    def _returned(self, channel, method, properties, body) -> None:
        try:
            if self._on_return is not None and isinstance(properties.message_id, str) and properties.message_id:
                self._on_return(properties.message_id)
        except Exception:  # noqa: BLE001 - one returned message costs only itself
            log.exception("dropped a returned request")
