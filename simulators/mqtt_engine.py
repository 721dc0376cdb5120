"""MQTT device connections driven by one selector loop (no paho loop threads).

Both ``simulators.mqtt_device`` (one device) and ``simulators.fleet`` (thousands) run
on :class:`MqttLoop`: every paho client's socket is registered in one
``selectors.DefaultSelector`` through paho's external-loop hooks
(``on_socket_open/close/register_write/unregister_write``) and served with
``loop_read``/``loop_write``; ``loop_misc`` (keepalive) runs once a second.  Connects
(blocking TCP connect + TLS handshake inside paho's ``reconnect()``) are spread over
iterations by a time budget, an optional rate limit and an optional cap on devices between
connect and subscribed; lost connections are retried with exponential backoff and jitter.
``stop()`` is async-signal-safe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import selectors
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as mqtt

from .credentials import Credentials
from .device import DEFAULT_NOTIFICATION_RECIPIENT, Device

log = logging.getLogger("simulators.mqtt")

KEEPALIVE = 60


class Backoff:
    """Exponential backoff with +-jitter: initial, initial*factor, ... capped at maximum."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.2,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum, self.factor, self.jitter, self._rng = initial, maximum, factor, jitter, rng
        self._current = initial

    def next(self) -> float:
        delay = self._current
        self._current = min(self.maximum, self._current * self.factor)
        return max(0.0, delay * (1 + self.jitter * (2 * self._rng() - 1)))

    def reset(self) -> None:
        self._current = self.initial


@dataclass
class LoopStats:
    devices: int = 0
    connected: int = 0          # currently connected (CONNACK accepted)
    subscribed: int = 0         # currently connected and subscribed
    attempts: int = 0           # connect attempts made
    failures: int = 0           # attempts that raised or were refused
    disconnects: int = 0
    requests: int = 0           # messages received on <id>/...
    publishes: int = 0          # messages published (replies + notifications)
    peak_subscribed: int = 0
    connecting: int = 0         # attempts under way: socket opened, not yet subscribed or given up
    peak_connecting: int = 0
    all_subscribed_at: float | None = None  # time.monotonic() when every device was first subscribed


class MqttDevice:
    """One simulated device's paho client, serviced by an :class:`MqttLoop`."""

    def __init__(self, creds: Credentials, loop: "MqttLoop", *, keepalive: int = KEEPALIVE,
                 notification_recipient: str | None = None, device: Device | None = None,
                 backoff: Backoff | None = None, endpoints: list[tuple[str, int]] | None = None,
                 first_endpoint: int = 0) -> None:
        self.creds = creds
        self.loop = loop
        self.id = creds.device_id
        recipient = notification_recipient or creds.notification_recipient or DEFAULT_NOTIFICATION_RECIPIENT
        self.device = device or Device(creds.device_id, notification_recipient=recipient)
        self.backoff = backoff or Backoff()
        self.connected = False
        self.subscribed = False
        self.attempting = False  # counted in loop.stats.connecting
        self.sock: socket.socket | None = None
        # The broker's nodes, as a device given several addresses knows them: it starts at one (a fleet
        # spreads its devices over them) and moves to the next whenever its node refuses or drops it.
        self.endpoints = list(endpoints or [(creds.host, creds.port("mqtt"))])
        self.endpoint = first_endpoint % len(self.endpoints)
        self.keepalive = keepalive

        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=creds.device_id, clean_session=False,
                        protocol=mqtt.MQTTv311, userdata=self)
        if creds.tls:
            # TLS 1.2+, broker verified against the CA with hostname checking; the broker logs the device in by
            # its certificate CN, or (a device registered for password login) by username = its id and password.
            c.tls_set_context(creds.ssl_context())
        if creds.username and (creds.password_login or not creds.tls):
            c.username_pw_set(creds.username, creds.password)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_socket_register_write
        c.on_socket_unregister_write = self._on_socket_unregister_write
        c.connect_async(*self.endpoints[self.endpoint], keepalive)
        self.client = c

    @property
    def where(self) -> str:
        return "%s:%s" % self.endpoints[self.endpoint]

    def next_endpoint(self) -> None:
        """Fail over: the next node is tried on the next attempt (a no-op with one endpoint)."""
        if len(self.endpoints) > 1:
            self.endpoint = (self.endpoint + 1) % len(self.endpoints)
            self.client.connect_async(*self.endpoints[self.endpoint], self.keepalive)

    # -- connection management (called by the loop) -----------------------------------
    def attempt_connect(self) -> None:
        self.loop.stats.attempts += 1
        self.attempting = True
        st = self.loop.stats
        st.connecting += 1
        st.peak_connecting = max(st.peak_connecting, st.connecting)
        try:
            self.client.reconnect()  # blocking TCP connect + TLS handshake, then CONNECT is queued
        except Exception as exc:  # OSError, ssl errors, timeouts, bad host names ...
            self.settled()
            self.loop.stats.failures += 1
            delay = self.backoff.next()
            log.warning("%s: connect to %s failed (%s); retrying in %.1f s", self.id, self.where, exc, delay)
            self._drop_socket()
            self.next_endpoint()
            self.loop.schedule_connect(self, delay)

    def settled(self) -> None:
        """The attempt ended (subscribed, refused or lost): it no longer counts against max_connecting."""
        if self.attempting:
            self.attempting = False
            self.loop.stats.connecting -= 1

    def _drop_socket(self) -> None:
        if self.sock is not None:
            self.loop.unwatch(self.sock)
            self.sock = None

    def on_readable(self) -> None:
        rc = self.client.loop_read()
        # Decrypted bytes buffered inside the SSL object do not make the fd readable again.
        while rc == mqtt.MQTT_ERR_SUCCESS:
            sock = self.client.socket()
            if not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
                break
            rc = self.client.loop_read()

    def on_writable(self) -> None:
        self.client.loop_write()

    def misc(self) -> None:
        self.client.loop_misc()

    # -- paho socket hooks -----------------------------------------------------------
    def _on_socket_open(self, client, userdata, sock) -> None:
        self.sock = sock
        self.loop.watch(sock, self)

    def _on_socket_close(self, client, userdata, sock) -> None:
        self.loop.unwatch(sock)
        if self.sock is sock:
            self.sock = None

    def _on_socket_register_write(self, client, userdata, sock) -> None:
        self.loop.want_write(sock, self, True)

    def _on_socket_unregister_write(self, client, userdata, sock) -> None:
        self.loop.want_write(sock, self, False)

    # -- MQTT callbacks (VERSION2 signatures) -------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.loop.stats.failures += 1
            log.error("%s: broker refused the connection: %s", self.id, reason_code)
            return  # paho closes the socket; _on_disconnect schedules the retry
        self.connected = True
        self.loop.stats.connected += 1
        self.backoff.reset()
        log.info("%s: connected to %s (session_present=%s)", self.id, self.where, flags.session_present)
        client.subscribe(f"{self.id}/#", qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.settled()
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("%s: subscription to %s/# refused: %s", self.id, self.id, failed)
            return
        if not self.subscribed:
            self.subscribed = True
            st = self.loop.stats
            st.subscribed += 1
            st.peak_subscribed = max(st.peak_subscribed, st.subscribed)
            if st.all_subscribed_at is None and st.subscribed == st.devices:
                st.all_subscribed_at = time.monotonic()
        log.info("%s: subscribed to %s/# (QoS 1) at %s", self.id, self.id, self.where)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.settled()
        if self.connected:
            self.loop.stats.connected -= 1
        if self.subscribed:
            self.loop.stats.subscribed -= 1
        self.connected = self.subscribed = False
        self.loop.stats.disconnects += 1
        if self.loop.stopping:
            log.info("%s: disconnected", self.id)
            return
        delay = self.backoff.next()
        log.warning("%s: connection lost (%s) at %s; reconnecting in %.1f s", self.id, reason_code, self.where, delay)
        self.next_endpoint()
        self.loop.schedule_connect(self, delay)

    def _on_message(self, client, userdata, msg) -> None:
        api = self.device.request_api(msg.topic, "/")
        if api is None:
            log.debug("%s: ignoring message on %s", self.id, msg.topic)
            return
        self.loop.stats.requests += 1
        try:
            publishes = self.device.handle(api, msg.payload)
        except Exception:  # never let one bad request kill the loop
            log.exception("%s: error handling %s", self.id, msg.topic)
            return
        for pub in publishes:
            client.publish(self.device.reply_topic(pub.api, "/"), pub.payload, qos=1)
            self.loop.stats.publishes += 1


class MqttLoop:
    """One selector loop for any number of :class:`MqttDevice` connections."""

    def __init__(self, *, connect_rate: float | None = None, connect_budget: float = 0.05,
                 max_connecting: int | None = None,
                 tick: Callable[[float], None] | None = None, tick_interval: float = 1.0) -> None:
        self.sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._due: list[tuple[float, int, MqttDevice]] = []
        self._seq = itertools.count()
        self.devices: list[MqttDevice] = []
        self.stats = LoopStats()
        self.stopping = False
        self.connect_interval = 1.0 / connect_rate if connect_rate else 0.0
        self.connect_budget = connect_budget
        # A broker slower than the fleet's connects answers some CONNECTs only after the keepalive: those
        # devices give up and retry, and the broker's work on them is lost. A cap keeps every attempt short.
        self.max_connecting = max_connecting
        self._next_connect_at = 0.0
        self.tick = tick
        self.tick_interval = tick_interval

    # -- registration ----------------------------------------------------------------
    def add(self, dev: MqttDevice) -> None:
        self.devices.append(dev)
        self.stats.devices += 1
        self.schedule_connect(dev, 0.0)

    def schedule_connect(self, dev: MqttDevice, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), dev))

    def watch(self, sock, dev: MqttDevice) -> None:
        try:
            self.sel.register(sock, selectors.EVENT_READ, dev)
        except KeyError:  # fd number reused before we saw the close: re-point it
            self.sel.modify(sock, selectors.EVENT_READ, dev)

    def unwatch(self, sock) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass

    def want_write(self, sock, dev: MqttDevice, on: bool) -> None:
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        try:
            self.sel.modify(sock, events, dev)
        except (KeyError, ValueError, OSError):
            pass

    def stop(self) -> None:
        """Async-signal-safe: set a flag and wake the selector."""
        self.stopping = True
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    # -- the loop --------------------------------------------------------------------
    def _connect_due(self, now: float) -> None:
        deadline = now + self.connect_budget
        while self._due and not self.stopping:
            t = time.monotonic()
            if self._due[0][0] > t or t > deadline or t < self._next_connect_at:
                return
            if self.max_connecting and self.stats.connecting >= self.max_connecting:
                return
            _, _, dev = heapq.heappop(self._due)
            if dev.client.socket() is not None:  # already connected or connecting
                continue
            self._next_connect_at = t + self.connect_interval
            dev.attempt_connect()

    def _timeout(self, now: float, next_tick: float) -> float:
        until = next_tick
        capped = self.max_connecting and self.stats.connecting >= self.max_connecting
        if self._due and not capped:  # capped: the next CONNACK or SUBACK wakes the selector
            until = min(until, max(self._due[0][0], self._next_connect_at))
        return min(1.0, max(0.0, until - now))

    def _dispatch(self, timeout: float) -> None:
        for key, mask in self.sel.select(timeout):
            dev = key.data
            if dev is None:
                try:
                    while self._wake_r.recv(64):
                        pass
                except OSError:
                    pass
                continue
            try:
                if mask & selectors.EVENT_READ:
                    dev.on_readable()
                if mask & selectors.EVENT_WRITE and dev.client.socket() is not None:
                    dev.on_writable()
            except Exception:  # one misbehaving connection must not stop the other devices
                log.exception("%s: unexpected error in the network loop", dev.id)

    def run(self) -> LoopStats:
        next_tick = time.monotonic() + self.tick_interval
        while not self.stopping:
            now = time.monotonic()
            self._connect_due(now)
            self._dispatch(self._timeout(time.monotonic(), next_tick))
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + self.tick_interval
                for dev in self.devices:
                    if dev.client.socket() is not None:
                        dev.misc()
                if self.tick is not None:
                    self.tick(now)
        self._shutdown()
        return self.stats

    def _shutdown(self, grace: float = 3.0) -> None:
        """Send DISCONNECT on every open connection (the persistent session stays) and flush."""
        for dev in self.devices:
            if dev.client.socket() is not None:
                dev.client.disconnect()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(d.client.socket() is not None for d in self.devices):
            self._dispatch(0.1)
        for dev in self.devices:
            sock = dev.client.socket()
            if sock is not None:
                self.unwatch(sock)
                try:
                    sock.close()
                except OSError:
                    pass
        self.sel.close()
        self._wake_r.close()
        self._wake_w.close()
