"""Helpers for the simulator tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# `pytest` (unlike `python -m pytest`) does not put the repo root on sys.path, and an editable install made before
# simulators/ existed does not map it: make `import simulators` work either way.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
PYTHON = sys.executable
NODE_DIR = REPO / "simulators" / "node"
FIRMWARE = REPO / "firmware" / "build" / "iotcloud-device"  # the C device (firmware/), built by `make test`
MQTT_HOST, MQTT_PORT = "127.0.0.1", 1883
AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def new_id() -> str:
    return secrets.token_hex(20)


# ---------------------------------------------------------------------------------------------
# Simulator subprocess


class SimProcess:
    """A simulator subprocess whose merged stdout/stderr is collected line by line."""

    def __init__(self, argv: list[str], cwd: Path = REPO, env: dict | None = None) -> None:
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 15.0, start: int = 0) -> re.Match:
        """Wait until a line (from index ``start``) matches ``pattern``; fail with the output so far."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = rx.search(line)
                    if m:
                        return m
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    break
                self._cond.wait(min(remaining, 0.5))
        raise AssertionError(f"no line matching {pattern!r} within {timeout}s (exit={self.proc.poll()}):\n{self.output()}")

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"simulator did not exit within {timeout}s of signal {sig}:\n{self.output()}")
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class MqttProbe:
    """The 'server' side: publishes ``<id>/<api>`` requests and collects ``server/<id>/...`` replies."""

    def __init__(self, host: str, port: int, tls_context=None) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.replies: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{secrets.token_hex(6)}",
                                  protocol=mqtt.MQTTv311)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self.client.on_connect = lambda c, u, f, rc, p: self._connected.set()
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = lambda c, u, msg: self.replies.put((msg.topic, msg.payload))
        self.client.connect(host, port, 30)
        self.client.loop_start()
        assert self._connected.wait(10), "probe could not connect"

    def watch(self, pattern: str) -> None:
        self._subscribed.clear()
        self.client.subscribe(pattern, qos=1)
        assert self._subscribed.wait(10), "probe subscribe timed out"

    def send(self, topic: str, payload: bytes | str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def expect(self, timeout: float = 10.0) -> tuple[str, bytes]:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout}s") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wipe_sessions(host: str, port: int, device_ids, tls_context_for=None) -> None:
    """Remove the persistent sessions the simulators left on the broker: CONNECT with clean_session=True, DISCONNECT.

    Without a network loop paho writes both packets synchronously.  A simulator still connected with that id
    is disconnected by the broker (session takeover).
    """
    import paho.mqtt.client as mqtt

    for dev_id in device_ids:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=dev_id, clean_session=True, protocol=mqtt.MQTTv311)
        if tls_context_for is not None:
            c.tls_set_context(tls_context_for(dev_id))
        try:
            c.connect(host, port, 10)
            c.disconnect()
        except OSError:
            pass


class TestPKI:
    __test__ = False

    def __init__(self, directory: Path, name: str = "Simulator Test CA") -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self._x509, self._hashes, self._ser, self._ec = x509, hashes, serialization, ec
        self._NameOID, self._EKU = NameOID, ExtendedKeyUsageOID
        self.dir = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_pem = self.ca_cert.public_bytes(serialization.Encoding.PEM).decode()
        (directory / "ca.pem").write_text(self.ca_pem)

    def issue(self, cn: str, server: bool = False) -> tuple[str, str]:
        x509, ser = self._x509, self._ser
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self._NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([self._EKU.SERVER_AUTH if server else self._EKU.CLIENT_AUTH]), critical=False)
        )
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = b.sign(self.ca_key, self._hashes.SHA256())
        cert_pem = cert.public_bytes(ser.Encoding.PEM).decode()
        key_pem = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()).decode()
        return cert_pem, key_pem

    def client_context(self, cn: str):
        import ssl
        import tempfile

        cert, key = self.issue(cn)
        ctx = ssl.create_default_context(cadata=self.ca_pem)
        with tempfile.TemporaryDirectory() as d:
            Path(d, "c.pem").write_text(cert)
            Path(d, "k.pem").write_text(key)
            ctx.load_cert_chain(Path(d, "c.pem"), Path(d, "k.pem"))
        return ctx


# (api, request, expected reply without correlation id); executed in order, so GPIO state carries over.
CASES = [
    ("get_status", {}, {"value": "running"}),
    ("set_status", {"value": "restart"}, {"value": "restarting"}),
    ("set_gpio", {"number": "5", "value": "1"}, {"number": 5, "value": 1}),
    ("get_gpio", {"number": 5}, {"number": 5, "value": 1}),
    ("get_gpio", {"number": "6"}, {"number": 6, "value": 0}),
    ("set_gpio", {"number": 5, "value": 0}, {"number": 5, "value": 0}),
    ("get_gpio", {"number": "5"}, {"number": 5, "value": 0}),
    ("set_rtc", {"value": 1600000000}, {"value": 1600000000}),
    ("write_uart", {"value": "plain text"}, {"value": "plain text"}),
    ("trigger_notification", {"recipient": "friend@example.com", "message": "hi"},
     {"recipient": "friend@example.com", "message": "hi"}),
]
