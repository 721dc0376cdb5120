"""Finding 8 (read store): nx-27017 cannot authenticate, so it is reachable from loopback only and its
files are private. If a later nx-27017 learns SCRAM, the first test fails: then turn credentials on."""

from __future__ import annotations

import os
import stat
import subprocess

import pymongo
import pytest

from iotcloud.embedded_mongo import start_embedded_mongo
from tests.ports import free_port


@pytest.fixture
def embedded_store(tmp_path):
    port = free_port()
    process = start_embedded_mongo(tmp_path / "state", port)
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=5000)
    yield tmp_path / "state", port, client
    client.close()
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:  # what the store does on shutdown is not this file's subject
        process.kill()
        process.wait(10)


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) of TCP sockets listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_nx27017_has_no_authentication_to_turn_on(embedded_store):
    _, _, client = embedded_store
    # A real MongoDB answers saslStart with a server-first SCRAM payload and refuses bad users;
    # nx-27017 acknowledges both without doing anything.
    sasl = client.admin.command({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"n,,n=x,r=abc"})
    assert "payload" not in sasl and "conversationId" not in sasl
    client.admin.command({"createUser": "probe", "pwd": "probe", "roles": []})
    assert client.admin.command({"usersInfo": 1}).get("users", []) == []


def test_the_embedded_store_listens_on_loopback_only_with_private_files(embedded_store):
    state, port, client = embedded_store
    client.iotcloud.probe.insert_one({"x": 1})
    assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 or :: listener
    data_dir = state / "mongo"
    assert stat.S_IMODE(os.lstat(data_dir).st_mode) == 0o700


def test_the_embedded_store_writes_no_log_line_per_request(embedded_store):
    """iotcloud.read_store_server runs nx-27017's thread-per-connection mode, which logs every answer at
    INFO, with its loggers at WARNING: a later nx-27017 that renamed them would fill the disk."""
    state, _, client = embedded_store
    probe = client.iotcloud.probe
    for i in range(200):
        probe.insert_one({"i": i})
        probe.update_one({"i": i}, {"$set": {"seen": True}})
    assert probe.count_documents({"seen": True}) == 200
    logs = b"".join(path.read_bytes() for path in (state / "mongo").glob("nx-27017.*") if path.suffix != ".pid")
    assert b"Command response" not in logs and logs.count(b"\n") < 20
