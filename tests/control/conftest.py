"""A whole running platform (private RabbitMQ with TLS, gateway, API, projector) shared by the
remote-control tests, plus HTTP and raw-device helpers."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from iotcloud.config import Settings
from tests.conftest import ops_port_env
from tests.ports import free_port
from tests.http_client import Http
from tests.simulators.sim_helpers import FIRMWARE, SimProcess

REPO = Path(__file__).resolve().parents[2]


class RunningPlatform:
    def __init__(self, root: Path, extra_env: dict | None = None):
        self.state = root / "state"
        ports = {name: free_port() for name in ("api", "mongo", "mqtt", "amqp", "auth", "mgmt", "dist", "epmd")}
        self.ports = ports
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "IOTCLOUD_"))},
                    "IOTCLOUD_STATE_DIR": str(self.state), "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                    "IOTCLOUD_API_PORT": str(ports["api"]), "IOTCLOUD_EMBEDDED_MONGODB_PORT": str(ports["mongo"]),
                    "IOTCLOUD_MQTT_PORT": str(ports["mqtt"]), "IOTCLOUD_AMQP_PORT": str(ports["amqp"]),
                    "IOTCLOUD_BROKER_AUTH_PORT": str(ports["auth"]),
                    "IOTCLOUD_BROKER_MANAGEMENT_PORT": str(ports["mgmt"]),
                    "IOTCLOUD_BROKER_DIST_PORT": str(ports["dist"]), "IOTCLOUD_BROKER_EPMD_PORT": str(ports["epmd"]),
                    "IOTCLOUD_ARGON2_MEMORY_KIB": "8192", "IOTCLOUD_ARGON2_TIME_COST": "1", **ops_port_env(),
                    **(extra_env or {})}
        self.log_path = root / "platform.log"
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen([sys.executable, "-m", "iotcloud.cli", "run"], env=self.env, cwd=REPO,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "Press Ctrl-C to stop." not in self.log_path.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the platform did not start:\n" + self.log_path.read_text()[-5000:])
            time.sleep(0.2)
        self.http = Http(f"http://127.0.0.1:{ports['api']}")
        self.settings = Settings(**{**Settings().__dict__, "state_dir": self.state, "mqtt_port": ports["mqtt"],
                                    "amqp_port": ports["amqp"], "broker_auth_port": ports["auth"],
                                    "broker_management_port": ports["mgmt"], "broker_dist_port": ports["dist"],
                                    "broker_epmd_port": ports["epmd"],
                                    "broker_loopback_port": int(self.env["IOTCLOUD_BROKER_LOOPBACK_PORT"])})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def wait_until_listed(self, device_id: str, timeout: float = 15) -> None:
        """Until the broker's connection tracking lists a connection of the device (it is up)."""
        from iotcloud.broker import admin_client
        admin = admin_client(self.settings)
        deadline = time.monotonic() + timeout
        while not admin.connections_of(device_id):
            assert time.monotonic() < deadline, f"{device_id} never listed by the management API"
            time.sleep(0.1)
        admin.close()

    def code_for(self, email: str) -> str:
        listing = subprocess.run([sys.executable, "-m", "iotcloud.cli", "outbox", "--json", "--to", email],
                                 env=self.env, capture_output=True, text=True, check=True).stdout.splitlines()
        return re.search(r"code is (\d{6})", json.loads(listing[0])["body"]).group(1)

    def user(self) -> "User":
        username = f"u{uuid.uuid4().hex[:10]}"
        email = f"{username}@example.com"
        status, _ = self.http("POST", "/v1/auth/signup", {"username": username, "password": "correct horse",
                                                          "email": email, "given_name": "T", "family_name": "U"})
        assert status == 201
        assert self.http("POST", "/v1/auth/confirm", {"username": username, "code": self.code_for(email)})[0] == 200
        tokens = self.http("POST", "/v1/auth/login", {"username": username, "password": "correct horse"})[1]
        return User(self, username, tokens["access_token"])


class User:
    def __init__(self, platform: RunningPlatform, username: str, token: str):
        self.platform, self.username, self.token = platform, username, token

    def __call__(self, method: str, path: str, body=None, timeout: float = 30):
        return self.platform.http(method, path, body, self.token, timeout)

    def device(self, tmp_path: Path, name: str | None = None, **options) -> tuple[str, Path]:
        name = name or f"d{uuid.uuid4().hex[:8]}"
        status, credentials = self("POST", "/v1/devices", {"name": name, **options})
        assert status == 201, credentials
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(credentials))
        return name, path

    def wait_for_connection(self, name: str, state: str, timeout: float = 15) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, device = self("GET", f"/v1/devices/{name}")
            if status == 200 and device.get("connection") == state:
                return device
            assert time.monotonic() < deadline, f"{name} never became {state}: {device}"
            time.sleep(0.05)

    def wait_for_status(self, command_id: str, statuses: set[str], timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status, command = self("GET", f"/v1/commands/{command_id}")
            if status == 200 and command["status"] in statuses:
                return command
            assert time.monotonic() < deadline, f"command {command_id} stuck: {command}"
            time.sleep(0.05)


class RawDevice:
    """A device we drive by hand (silent, late or malformed answers) over real MQTTS."""

    def __init__(self, credentials: Path):
        data = json.loads(credentials.read_text())
        self.device_id = data["device_id"]
        folder = credentials.parent / f"raw-{self.device_id[:8]}"
        folder.mkdir(exist_ok=True)
        for key in ("ca", "certificate", "private_key"):
            (folder / key).write_text(data[key])
        self.requests: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device_id,
                                  protocol=mqtt.MQTTv311, clean_session=True)
        self.client.tls_set(ca_certs=str(folder / "ca"), certfile=str(folder / "certificate"),
                            keyfile=str(folder / "private_key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.requests.append((m.topic, m.payload))
        self.client.on_disconnect = lambda *a: self.disconnected.set()
        self.client.connect(data["host"], data["mqtt_port"])
        self.client.loop_start()
        assert self.subscribed.wait(10), "raw device did not connect and subscribe"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            self.connected.set()
            client.subscribe(f"{self.device_id}/#", qos=1)

    def wait_request(self, count: int = 1, timeout: float = 10) -> tuple[str, bytes]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            assert time.monotonic() < deadline, "no request reached the device"
            time.sleep(0.01)
        return self.requests[count - 1]

    def answer(self, api: str, payload: bytes) -> None:
        self.client.publish(f"server/{self.device_id}/{api}", payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="session")
def platform(tmp_path_factory):
    running = RunningPlatform(tmp_path_factory.mktemp("platform"))
    yield running
    running.stop()


@pytest.fixture
def user(platform):
    return platform.user()


@pytest.fixture
def simulator(tmp_path):
    started = []

    def start(kind: str, credentials: Path) -> SimProcess:
        command = {"mqtt": [sys.executable, "-m", "simulators.mqtt_device", "--credentials", str(credentials)],
                   "amqp": [sys.executable, "-m", "simulators.amqp_device", "--credentials", str(credentials)],
                   "node": ["node", str(REPO / "simulators/node/device_simulator.js"), "--credentials",
                            str(credentials)],
                   "firmware": [str(FIRMWARE), "--credentials", str(credentials)]}[kind]
        if kind == "firmware":
            assert FIRMWARE.is_file(), "`make test` builds firmware/build/iotcloud-device"
        sim = SimProcess(command)
        started.append(sim)
        return sim
    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def raw_device():
    devices = []

    def connect(credentials: Path) -> RawDevice:
        device = RawDevice(credentials)
        devices.append(device)
        return device
    yield connect
    for device in devices:
        device.close()
