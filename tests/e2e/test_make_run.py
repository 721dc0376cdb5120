"""End to end: start the real platform as `make run` does and drive it over HTTP like a user."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pymongo
import pytest
from cryptography.hazmat.primitives import serialization

from iotcloud.embedded_mongo import port_open
from tests.conftest import stop_process
from tests.ports import free_port
from tests.e2e.launch import start_platform
from tests.http_client import Http
from tests.processes import children_of

pytestmark = pytest.mark.e2e


@pytest.fixture
def platform_process(tmp_path):
    api_port, mongo_port = free_port(), free_port()
    process, env = start_platform(tmp_path, {"IOTCLOUD_API_PORT": str(api_port),
                                             "IOTCLOUD_EMBEDDED_MONGODB_PORT": str(mongo_port)})
    yield {"process": process, "http": Http(f"http://127.0.0.1:{api_port}"), "env": env, "log": tmp_path / "platform.log",
           "state": tmp_path / "state", "mongo_port": mongo_port, "api_port": api_port}
    stop_process(process)  # its children follow it (PR_SET_PDEATHSIG)


def open_files(pid: int) -> list[str]:
    files = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            files.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return files


def memory_contains(pid: int, needles: list[bytes]) -> bool:
    """Scans every readable mapping of a live process (the tests run as its owner or root)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as memory:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                memory.seek(start)
                chunk = memory.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            if any(needle in chunk for needle in needles):
                return True
    return False


def outbox_code(env: dict, email: str) -> str:
    listing = subprocess.run([sys.executable, "-m", "iotcloud.cli", "outbox", "--json", "--to", email], env=env,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    message = json.loads(listing[0])
    assert {"to", "subject", "body", "created_at"} <= set(message)
    return re.search(r"code is (\d{6})", message["body"]).group(1)


def test_a_user_signs_up_registers_a_device_and_the_ca_key_stays_secret(platform_process, tmp_path):
    http, env = platform_process["http"], platform_process["env"]
    assert http("GET", "/healthz") == (200, {"status": "ok"})

    # Modern API: sign up, confirm with the code from the outbox, log in, register, list, unregister.
    assert http("POST", "/v1/auth/signup", {"username": "alice", "password": "correct horse", "email": "alice@example.com",
                                           "given_name": "Alice", "family_name": "Liddell"})[0] == 201
    assert http("POST", "/v1/auth/confirm", {"username": "alice", "code": outbox_code(env, "alice@example.com")})[0] == 200
    status, tokens = http("POST", "/v1/auth/login", {"username": "alice", "password": "correct horse"})
    token = tokens["access_token"]
    status, device = http("POST", "/v1/devices", {"name": "kitchen"}, token)
    assert status == 201
    (tmp_path / "ca.pem").write_text(device["ca"])
    (tmp_path / "device.pem").write_text(device["certificate"])
    verify = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "ca.pem", tmp_path / "device.pem"],
                            capture_output=True, text=True)
    assert verify.returncode == 0 and verify.stdout.strip().endswith("OK"), verify.stdout + verify.stderr
    subject, serial = subprocess.run(["openssl", "x509", "-noout", "-subject", "-serial", "-in", tmp_path / "device.pem"],
                                     capture_output=True, text=True, check=True).stdout.splitlines()
    # The subject names the certificate's own serial: the broker's connection events show only the subject.
    serial = serial.removeprefix("serial=").lower().lstrip("0")
    assert subject.replace(" ", "") == f"subject=CN={device['device_id']},serialNumber={serial}"
    assert [d["name"] for d in http("GET", "/v1/devices", token=token)[1]["items"]] == ["kitchen"]
    assert http("DELETE", "/v1/devices/kitchen", token=token)[0] == 204
    assert http("GET", "/v1/devices", token=token)[1]["items"] == []

    # libpyiotcloud v2 routes against the same running platform.
    assert http("POST", "/user/signup", {"username": "bob", "password": "correct horse", "email": "bob@example.com",
                                        "givenname": "Bob", "familyname": "Builder"})[1]["status"] == "OK"
    assert http("POST", "/user/confirm_signup", {"username": "bob", "confirmationcode":
                                                 outbox_code(env, "bob@example.com")})[1]["status"] == "OK"
    v2_token = http("POST", "/user/login", {"username": "bob", "password": "correct horse"})[1]["token"]
    auth = {"username": "bob", "token": v2_token}
    registered = http("POST", "/devices/device", {**auth, "devicename": "ft900"})[1]
    assert registered["status"] == "OK" and registered["device"]["ca"] == device["ca"]
    assert [d["devicename"] for d in http("POST", "/devices", auth)[1]["devices"]] == ["ft900"]
    assert http("DELETE", "/devices/device", {**auth, "devicename": "ft900"})[1]["status"] == "OK"
    assert http("POST", "/devices", auth)[1]["devices"] == []
    assert http("GET", "/openapi.json")[0] == 200

    # The CA private key appears in no response, event, read model or log.
    state = platform_process["state"]
    ca_key = (state / "pki" / "ca.key").read_text()
    assert oct((state / "pki" / "ca.key").stat().st_mode & 0o777) == "0o600"
    secret = "".join(ca_key.strip().splitlines()[1:-1])
    # Skip the PKCS#8 header every P-256 key shares (device keys have it too) and the public point at
    # the end (the CA certificate has it): the middle is the private scalar.
    needles = [secret, secret[48:88]]
    assert not any(n in text for text in http.seen for n in needles)
    events = b"".join(row[0] for path in state.glob("*.events.sqlite3")
                      for row in sqlite3.connect(path).execute("SELECT state FROM stored_events"))
    assert b"alice" in events and not any(n.encode() in events for n in needles)
    assert b"PRIVATE KEY" not in events
    mongo = pymongo.MongoClient(f"mongodb://127.0.0.1:{platform_process['mongo_port']}/")
    dump = repr([list(mongo["iotcloud"][c].find({})) for c in mongo["iotcloud"].list_collection_names()])
    assert "alice" in dump and not any(n in dump for n in needles) and "PRIVATE KEY" not in dump
    mongo.close()

    # The API process never holds the CA key: no open file, and not the private scalar in its memory
    # (the signer process, which does hold it, is the control that the scan can find it).
    banner = platform_process["log"].read_text()
    api_pid = int(re.search(r"api \[pid (\d+)\]", banner).group(1))
    signer_pid = int(re.search(r"signer \[pid (\d+)\]", banner).group(1))
    scalar = serialization.load_pem_private_key(ca_key.encode(), None).private_numbers().private_value
    scalar_needles = [scalar.to_bytes(32, "big"), scalar.to_bytes(32, "little")]
    for pid in [api_pid, *(child for child, _ in children_of(api_pid))]:
        assert not [f for f in open_files(pid) if f.endswith("/ca.key")], f"API process {pid} has ca.key open"
        assert not memory_contains(pid, scalar_needles), f"API process {pid} holds the CA private key"
    assert memory_contains(signer_pid, scalar_needles), "the memory scan cannot even find the key in the signer"

    # Ctrl-C (SIGTERM here) stops every process the platform started.
    process = platform_process["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    log = platform_process["log"].read_text()
    assert "iotcloud stopped." in log
    assert not any(n in log for n in needles) and "correct horse" not in log
    assert not port_open(platform_process["api_port"]) and not port_open(platform_process["mongo_port"])
