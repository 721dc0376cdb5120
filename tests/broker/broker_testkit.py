"""Test clients for the broker tests: every broker reaction becomes an event or a queue to wait on."""

from __future__ import annotations

import os
import queue
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pika

from gateways.broker import PrivateBrokerNode

GATEWAY = "iotcloud-gateway"
TIMEOUT = 10.0


@dataclass(frozen=True)
class DeviceCert:
    device_id: str
    cert_file: Path
    key_file: Path


class MqttDevice:
    """A paho 2.x MQTT 3.1.1 client whose every broker reaction is an event or a queue to wait on."""

    def __init__(self, node: PrivateBrokerNode, cert: DeviceCert | None, client_id: str):
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.subacks: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.published: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        self.client.tls_set(ca_certs=str(node.ca_file),
                            certfile=str(cert.cert_file) if cert else None,
                            keyfile=str(cert.key_file) if cert else None)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put(rcs)
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_publish = lambda c, u, mid, rc, p: self.published.put(mid)
        self.port = node.ports.mqtts

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = reason_code
        (self.refused if reason_code.is_failure else self.connected).set()

    def connect(self) -> "MqttDevice":
        self.client.connect("localhost", self.port, keepalive=30)
        self.client.loop_start()
        return self

    def wait_connack(self, timeout: float = TIMEOUT) -> bool:
        """True on CONNACK success, False on a refusal or a closed connection without success."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.refused.is_set() or self.disconnected.is_set():
                return False
            self.disconnected.wait(0.02)
        raise TimeoutError("no CONNACK and no disconnect")

    def subscribe(self, topic: str, timeout: float = TIMEOUT):
        self.client.subscribe(topic, qos=1)
        return self.subacks.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def amqp_parameters(node: PrivateBrokerNode, cert_file: Path | None, key_file: Path | None):
    context = ssl.create_default_context(cafile=str(node.ca_file))
    if cert_file:
        context.load_cert_chain(str(cert_file), str(key_file))
    return pika.ConnectionParameters(host="localhost", port=node.ports.amqps,
                                     ssl_options=pika.SSLOptions(context, server_hostname="localhost"),
                                     credentials=pika.credentials.ExternalCredentials(),
                                     connection_attempts=1, blocked_connection_timeout=TIMEOUT,
                                     socket_timeout=TIMEOUT)


def libpyiotcloud_amqp_device(connection, gateway_channel, device_id: str) -> tuple:
    """What libpyiotcloud's AMQP device declares (amq.topic, queue `mqtt-subscription-<id>qos1` bound with
    `<id>.#`), plus a gateway queue for its answers: (device channel, its queue, the answers queue)."""
    channel = connection.channel()
    channel.exchange_declare("amq.topic", exchange_type="topic", durable=True, auto_delete=False)
    own_queue = f"mqtt-subscription-{device_id}qos1"
    channel.queue_declare(own_queue, auto_delete=True)
    channel.queue_bind(own_queue, "amq.topic", routing_key=f"{device_id}.#")
    answers = f"iotcloud.gateway.test-replies-{device_id}"
    gateway_channel.queue_declare(answers, exclusive=True)
    gateway_channel.queue_bind(answers, "amq.topic", routing_key=f"server.{device_id}.#")
    return channel, own_queue, answers


_consumers: dict = {}


def next_message(channel, queue_name: str, timeout: float = TIMEOUT):
    """The next (method, properties, body) from `queue_name`, or TimeoutError.

    One consumer per (channel, queue) stays open, so messages delivered together are never dropped.
    """
    key = (id(channel), queue_name)
    if key not in _consumers or _consumers[key][0] is not channel:
        _consumers[key] = (channel, channel.consume(queue_name, auto_ack=True, inactivity_timeout=timeout))
    method, properties, body = next(_consumers[key][1])
    if method is None:
        raise TimeoutError(f"nothing arrived on {queue_name} within {timeout}s")
    return method, properties, body


class CpuLoad:
    """Busy processes, `per_core` per core (IOTCLOUD_TEST_BURNERS_PER_CORE, default 1), while the block
    runs; each also stops by itself after 15 minutes should the block never end."""

    BURN = "import time\nend = time.monotonic() + 900\nwhile time.monotonic() < end: pass"

    def __init__(self, per_core: int | None = None):
        self.count = (per_core or int(os.environ.get("IOTCLOUD_TEST_BURNERS_PER_CORE", "1"))) * (os.cpu_count() or 2)
        self._burners: list[subprocess.Popen] = []

    def __enter__(self) -> int:
        self._burners = [subprocess.Popen([sys.executable, "-c", self.BURN]) for _ in range(self.count)]
        return self.count

    def __exit__(self, *exc) -> None:
        for burner in self._burners:
            burner.kill()
            burner.wait()


def _pem_files(credentials: dict, folder: Path) -> dict[str, Path]:
    """`credentials` as POST /v1/devices answers them (device_id, ca, certificate, private_key, host, ports)."""
    folder.mkdir(exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    files = {}
    for key in ("ca", "certificate", "private_key"):
        files[key] = folder / f"{tag}.{key}"
        files[key].write_text(credentials[key])
    return files


def mqtt_login(credentials: dict, folder: Path, timeout: float = TIMEOUT) -> bool:
    """One MQTT login: True on a successful CONNACK, False when the broker refuses (a failed TLS handshake,
    a refused CONNACK or a closed connection)."""
    files = _pem_files(credentials, folder)
    outcome: queue.Queue = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=credentials["device_id"],
                         protocol=mqtt.MQTTv311, reconnect_on_failure=False)
    client.tls_set(ca_certs=str(files["ca"]), certfile=str(files["certificate"]), keyfile=str(files["private_key"]),
                   tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_connect = lambda c, u, f, reason_code, p: outcome.put(not reason_code.is_failure)
    client.on_disconnect = lambda *args: outcome.put(False)
    try:
        client.connect(credentials["host"], credentials["mqtt_port"], keepalive=30)
    except (ssl.SSLError, OSError):
        return False
    client.loop_start()
    try:
        return outcome.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError("neither a CONNACK nor a refusal") from None
    finally:
        client.disconnect()
        client.loop_stop()


class PendingLogin:
    """A TLS connection to the MQTT listener whose handshake is done and whose CONNECT is not sent yet: the
    quickest possible login after an answer (the broker asks its auth backend only on CONNECT)."""

    def __init__(self, credentials: dict, folder: Path):
        files = _pem_files(credentials, folder)
        context = ssl.create_default_context(cafile=str(files["ca"]))
        context.load_cert_chain(str(files["certificate"]), str(files["private_key"]))
        self.client_id = credentials["device_id"].encode()
        raw = socket.create_connection((credentials["host"], credentials["mqtt_port"]), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")

    def connect(self, keep_open: bool = False) -> bool:
        """Sends an MQTT 3.1.1 CONNECT; True when the CONNACK accepts it (`keep_open`: and stay connected)."""
        body = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(self.client_id).to_bytes(2, "big") + self.client_id
        try:
            self.sock.sendall(bytes([0x10, len(body)]) + body)
            connack = b""
            while len(connack) < 4:
                chunk = self.sock.recv(4 - len(connack))
                if not chunk:
                    return False
                connack += chunk
        except (ssl.SSLError, OSError):
            self.sock.close()
            return False
        accepted = connack[0] == 0x20 and connack[3] == 0
        if not (accepted and keep_open):
            self.sock.close()
        return accepted

    def wait_closed_by_broker(self, timeout: float) -> bool:
        """True once the broker closes the connection (keepalive is 30 s, so it is never idle-closed sooner)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(4096):
                pass
            return True
        except (TimeoutError, socket.timeout):
            return False
        except (ssl.SSLError, OSError):
            return True
        finally:
            self.sock.close()
