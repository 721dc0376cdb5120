"""Replaying the whole event store into an empty history read model reproduces the live one exactly,
after a real run (`iotcloud run`: broker, gateway, API, projector): calls answered by a simulator
through both REST flavours, a timeout and a refused answer from a hand-driven device, presence
changes, a certificate reissue and an unregistration."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pymongo import MongoClient

from iotcloud.config import Settings
from queries.read_models import HISTORY, ReadModelCatalogue, collection_name
from tests.control.conftest import REPO


def cli(platform, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iotcloud.cli", *argv], env=platform.env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def history_settled(platform, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [json.loads(line) for line in cli(platform, "projections", "status", "--json").stdout.splitlines()]
        history = [row for row in rows if row["projection"] == HISTORY]
        if history and all(row["behind"] == 0 for row in history):
            return history
        assert time.monotonic() < deadline, f"history never caught up: {history}"
        time.sleep(0.2)


def test_replaying_the_store_reproduces_the_live_history(platform, user, simulator, raw_device, tmp_path):
    answering, credentials = user.device(tmp_path)
    sim = simulator("mqtt", credentials)
    user.wait_for_connection(answering, "online")
    for method, path, body in (("GET", f"/v1/devices/{answering}/gpio/1", None),
                               ("PUT", f"/v1/devices/{answering}/gpio/2", {"value": 1}),
                               ("GET", f"/v1/devices/{answering}/status", None)):
        assert user(method, path, body)[0] == 200
    token = platform.http("POST", "/user/login", {"username": user.username, "password": "correct horse"})[1]["token"]
    v2 = {"username": user.username, "token": token, "devicename": answering}
    assert platform.http("POST", "/devices/device/gpio", {**v2, "number": "3"})[1]["status"] == "OK"

    silent, silent_credentials = user.device(tmp_path)
    device = raw_device(silent_credentials)
    user.wait_for_connection(silent, "online")
    status, problem = user("POST", f"/v1/devices/{silent}/commands", {"api": "get_gpio", "params": {"number": 1},
                                                                      "timeout": 0.3})
    assert status == 504
    status, waiting = user("POST", f"/v1/devices/{silent}/commands", {"api": "get_status", "wait": False})
    device.wait_request(2)
    device.answer("get_status", b'{"no_value": 1}')
    assert user.wait_for_status(waiting["command_id"], {"failed"})["status"] == "failed"

    sim.stop()
    user.wait_for_connection(answering, "offline")
    assert user("POST", f"/v1/devices/{answering}/certificate", {})[0] == 200
    assert user("DELETE", f"/v1/devices/{silent}")[0] == 204
    assert device.disconnected.wait(10)
    history_settled(platform)

    status, page = user("GET", f"/v1/devices/{answering}/history?api=get_gpio")
    assert status == 200 and [i["state"] for i in page["items"]] == ["succeeded", "succeeded"]
    status, everything = user("GET", "/v1/history?limit=500")
    events = {(i["device_name"], i["event"], i["state"]) for i in everything["items"]}
    assert {(silent, "command", "timed_out"), (silent, "command", "failed"), (answering, "connected", "online"),
            (answering, "disconnected", "offline"), (answering, "certificate_reissued", "reissued"),
            (silent, "unregistered", "unregistered")} <= events

    settings = Settings(**{**Settings().__dict__, "embedded_mongodb_port": int(platform.env["IOTCLOUD_EMBEDDED_MONGODB_PORT"])})
    client = MongoClient(settings.effective_mongodb_uri, tz_aware=True)
    db = client[settings.mongodb_database]
    live_generation = ReadModelCatalogue(db).active_generation(HISTORY)
    before = history_settled(platform)
    rebuilt = cli(platform, "projections", "rebuild", HISTORY)
    assert rebuilt.returncode == 0, rebuilt.stderr
    new_generation = ReadModelCatalogue(db).active_generation(HISTORY)
    assert new_generation == live_generation + 1
    heads = {row["source"]: row["head"] for row in before}
    assert heads == {row["source"]: row["head"] for row in history_settled(platform)}, "events arrived meanwhile"
    live = sorted(db[collection_name(HISTORY, live_generation)].find({}), key=lambda d: d["_id"])
    replayed = sorted(db[collection_name(HISTORY, new_generation)].find({}), key=lambda d: d["_id"])
    assert [d["_id"] for d in live] == [d["_id"] for d in replayed]
    assert live == replayed
    client.close()
