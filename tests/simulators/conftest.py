"""Fixtures for the simulator tests: brokers, simulator subprocesses, MQTT probes, a test PKI."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.ports import free_port

from sim_helpers import (
    AMQP_HOST,
    AMQP_PORT,
    FIRMWARE,
    MQTT_HOST,
    MQTT_PORT,
    NODE_DIR,
    MqttProbe,
    SimProcess,
    TestPKI,
    _port_open,
    new_id,
    wipe_sessions,
)


@pytest.fixture
def sim_factory():
    procs: list[SimProcess] = []

    def start(argv: list[str], **kw) -> SimProcess:
        p = SimProcess(argv, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()


# ---------------------------------------------------------------------------------------------
# Brokers and probes


@pytest.fixture(scope="session")
def mosquitto() -> tuple[str, int]:
    if not _port_open(MQTT_HOST, MQTT_PORT):
        pytest.fail(f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT}: `make test` starts Mosquitto (deploy/test-services.sh)")
    return MQTT_HOST, MQTT_PORT


@pytest.fixture(scope="session")
def rabbitmq() -> tuple[str, int]:
    if not _port_open(AMQP_HOST, AMQP_PORT):
        pytest.fail(f"no AMQP broker on {AMQP_HOST}:{AMQP_PORT}: `make test` starts RabbitMQ (deploy/test-services.sh)")
    return AMQP_HOST, AMQP_PORT


@pytest.fixture
def mqtt_probe(mosquitto):
    probes: list[MqttProbe] = []

    def make(host: str = mosquitto[0], port: int = mosquitto[1], tls_context=None) -> MqttProbe:
        p = MqttProbe(host, port, tls_context)
        probes.append(p)
        return p

    yield make
    for p in probes:
        p.close()


@pytest.fixture
def plain_device(tmp_path, mosquitto):
    """Factory: write a plain ("tls": false) credentials file; sessions are wiped afterwards."""
    made: list[str] = []

    def make(**extra) -> tuple[str, Path]:
        dev_id = extra.pop("device_id", None) or new_id()
        data = {"device_id": dev_id, "host": MQTT_HOST, "mqtt_port": MQTT_PORT, "amqp_port": AMQP_PORT, "tls": False,
                "registration_extra_key": {"ignored": True}}
        data.update(extra)
        path = tmp_path / f"{dev_id}.json"
        path.write_text(json.dumps(data))
        made.append(dev_id)
        return dev_id, path

    yield make
    wipe_sessions(MQTT_HOST, MQTT_PORT, made)


@pytest.fixture(scope="session")
def node_ready() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `make test` installs it")
    if not (NODE_DIR / "node_modules" / "mqtt").is_dir():
        pytest.fail("simulators/node/node_modules is missing: `make test` runs `npm ci` in simulators/node")
    return NODE_DIR


@pytest.fixture(scope="session")
def firmware_ready() -> Path:
    if not FIRMWARE.is_file():
        pytest.fail(f"{FIRMWARE} is missing: `make test` builds it (make -C firmware)")
    return FIRMWARE


# ---------------------------------------------------------------------------------------------
# A throw-away PKI (CA, server cert for 127.0.0.1/localhost, client certs with CN = device id)


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_mosquitto(pki, tmp_path_factory):
    """A private Mosquitto with an MQTTS listener requiring client certificates (CN = username)."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if exe is None:
        pytest.fail("mosquitto binary not found: `make test` installs it")
    d = tmp_path_factory.mktemp("mosq-tls")
    cert, key = pki.issue("localhost", server=True)
    (d / "server.pem").write_text(cert)
    (d / "server.key").write_text(key)
    port = free_port()
    (d / "mosquitto.conf").write_text(
        # 'user': when started as root, mosquitto would drop to the mosquitto user, which cannot read pytest's tmp dirs.
        f"user {getpass.getuser()}\nper_listener_settings false\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
        f"allow_anonymous false\n"
        f"listener {port} 127.0.0.1\ncafile {pki.dir / 'ca.pem'}\ncertfile {d / 'server.pem'}\nkeyfile {d / 'server.key'}\n"
        f"require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.2\n"
    )
    log_file = open(d / "mosquitto.log", "wb")  # a file, not a pipe nobody drains
    proc = subprocess.Popen([exe, "-c", str(d / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=log_file)
    deadline = time.monotonic() + 10
    while not _port_open("127.0.0.1", port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log_file.close()
            pytest.fail(f"private TLS mosquitto did not start: {(d / 'mosquitto.log').read_text(errors='replace')}")
        time.sleep(0.05)
    yield "127.0.0.1", port
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log_file.close()
