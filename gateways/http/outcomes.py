"""How the REST process hears about device calls without polling the store: a broker queue of its
own receives every outcome the gateway publishes, and waiting requests are woken by command id."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import OrderedDict

import pika

from gateways.broker.topology import CONTROL_EXCHANGE, RESULTS_EXCHANGE, declare_shared_exchanges
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

    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                connection = pika.BlockingConnection(self._address.parameters())
                channel = connection.channel()
                declare_shared_exchanges(channel)
                queue = f"iotcloud.api.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
                channel.queue_declare(queue, exclusive=True, auto_delete=True)
                channel.queue_bind(queue, RESULTS_EXCHANGE)
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
            outcome = load_bounded(body, MAX_OUTCOME, "outcome", MAX_OUTCOME_DEPTH)
            if not isinstance(outcome, dict):
                raise MalformedPayload("outcome is not a JSON object")
            self._deliver(outcome)
        except MalformedPayload as problem:
            log.warning("dropped an outcome: %s", problem)
        except Exception:  # noqa: BLE001
            log.exception("dropped an outcome")
