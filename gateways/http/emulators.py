"""The device emulator of the web app: a user brings one of their registered devices online from the
browser, without hardware (libpyiotcloud roadmap item 9).

A server-side simulator rather than MQTT over WebSockets in the browser: the broker admits devices
only over TLS with their own X.509 certificate, which a browser cannot present from JavaScript, and
password-login devices are a later feature. So the browser sends the device's certificate and private
key (which only the user holds: the platform never stores private keys) and the API runs the project's
Python MQTT simulator (`python -m simulators.mqtt_device`) as a child process with them:

- the credentials reach the child on its standard input, never a file or a command line;
- the broker address and CA are the platform's own, never the caller's (no connection anywhere else);
- the certificate must name the device (CN = its device id) and match the key;
- one emulator per user (starting another stops the first), at most MAX_RUNNING per API process,
  each stopped after its minutes by `timeout`, which bounds it even if the API process dies;
- what the device "displays" (UART text, notifications) is kept in memory, the last DISPLAY_LINES
  lines, for its owner only; nothing of it is logged.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from commands.errors import TooManyAttempts, ValidationFailed

MAX_RUNNING = 4
MAX_MINUTES = 30
DEFAULT_MINUTES = 10
DISPLAY_LINES = 20


class TooManyEmulators(TooManyAttempts):
    problem, status = "too-many-emulators", 429
    title = "Every device emulator of this server is in use; retry later"


@dataclass
class Emulation:
    device: str
    device_id: str
    process: subprocess.Popen
    started_at: dt.datetime
    stops_at: dt.datetime
    display: collections.deque = field(default_factory=lambda: collections.deque(maxlen=DISPLAY_LINES))

    def view(self) -> dict:
        code = self.process.poll()
        return {"device": self.device, "device_id": self.device_id, "running": code is None,
                "exit_code": code, "started_at": self.started_at.isoformat(),
                "stops_at": self.stops_at.isoformat(), "display": list(self.display)}


def checked_identity(device_id: str, certificate_pem: str, private_key_pem: str) -> None:
    """The certificate must be this device's (CN = device id) and the key its own."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem.encode())
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ValidationFailed("certificate and private_key must be the PEM texts of the device's credentials",
                               field="certificate") from None
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != device_id:
        raise ValidationFailed("this certificate belongs to another device", field="certificate")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (certificate.public_key().public_bytes(serialization.Encoding.DER, public)
            != key.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ValidationFailed("the private key does not match the certificate", field="private_key")


class Emulators:
    def __init__(self, ca_pem: Callable[[], str], host: str, mqtt_port: int, max_running: int = MAX_RUNNING):
        """`ca_pem` is asked at each start: the signer that knows it may start after the API."""
        self._ca, self._host, self._port, self._max = ca_pem, host, mqtt_port, max_running
        self._lock = threading.Lock()
        self._running: dict[str, Emulation] = {}

    def start(self, owner: str, device: dict, certificate: str, private_key: str,
              minutes: int = DEFAULT_MINUTES) -> dict:
        checked_identity(device["device_id"], certificate, private_key)
        key = owner.lower()
        self.stop(owner)
        with self._lock:
            if sum(e.process.poll() is None for e in self._running.values()) >= self._max:
                raise TooManyEmulators(f"at most {self._max} emulators run at once", retry_after=60)
            credentials = {"device_id": device["device_id"], "ca": self._ca(), "certificate": certificate,
                           "private_key": private_key, "host": self._host, "mqtt_port": self._port}
            process = subprocess.Popen(
                [shutil.which("timeout") or "timeout", "-k", "5", str(minutes * 60),
                 sys.executable, "-m", "simulators.mqtt_device", "--credentials", "/dev/stdin",
                 "--log-level", "ERROR"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            process.stdin.write(json.dumps(credentials))
            process.stdin.close()
            now = dt.datetime.now(dt.timezone.utc)
            emulation = Emulation(device["name"], device["device_id"], process, now,
                                  now + dt.timedelta(minutes=minutes))
            self._running[key] = emulation
        threading.Thread(target=_collect, args=(emulation,), daemon=True, name="emulator-display").start()
        return emulation.view()

    def status(self, owner: str) -> dict | None:
        with self._lock:
            emulation = self._running.get(owner.lower())
        return emulation.view() if emulation else None

    def stop(self, owner: str) -> bool:
        with self._lock:
            emulation = self._running.pop(owner.lower(), None)
        if emulation is None:
            return False
        _end(emulation.process)
        return True

    def close(self) -> None:
        with self._lock:
            running, self._running = list(self._running.values()), {}
        for emulation in running:
            _end(emulation.process)


def _end(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # `timeout` passes SIGTERM on: the simulator disconnects cleanly
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _collect(emulation: Emulation) -> None:
    """Keeps the simulator's last display lines (it prints UART text and notifications on stdout)."""
    for line in emulation.process.stdout:
        emulation.display.append(line.rstrip("\n")[:300])
    emulation.process.stdout.close()
    emulation.process.wait()
