"""Devices registered for password login, end to end on the whole platform: a simulator with only host,
port, username and password (no certificate, no CA) over MQTTS or AMQPS answers calls through both REST
flavours; rotation refuses the old password and closes its connections before answering."""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.control.conftest import REPO
from tests.control.test_device_control import exercise_every_api, v2_auth
from tests.simulators.sim_helpers import SimProcess


def password_simulator(kind: str, credentials: dict, password: str | None = None) -> SimProcess:
    """As libpyiotcloud's simulators were started: --USE_HOST/--USE_PORT/--USE_USERNAME/--USE_PASSWORD only."""
    port = credentials["mqtt_port"] if kind == "mqtt" else credentials["amqp_port"]
    return SimProcess([sys.executable, "-m", f"simulators.{kind}_device", "--USE_HOST", credentials["host"],
                       "--USE_PORT", str(port), "--USE_USERNAME", credentials["username"],
                       "--USE_PASSWORD", password or credentials["broker_password"]], cwd=REPO)


@pytest.mark.parametrize("kind", ["mqtt", "amqp"])
def test_password_device_answers_both_rest_flavours(platform, user, tmp_path, kind):
    name, path = user.device(tmp_path, login="password")
    credentials = json.loads(path.read_text())
    assert credentials["login"] == "password" and credentials["username"] == credentials["device_id"]
    assert len(credentials["broker_password"]) >= 43  # 256 bits, urlsafe base64
    shown = user("GET", f"/v1/devices/{name}")[1]
    assert shown["login"] == "password" and shown["password_set_at"] and "broker_password" not in shown
    sim = password_simulator(kind, credentials)
    try:
        sim.wait_for(r"connected to", timeout=20)
        user.wait_for_connection(name, "online")
        exercise_every_api(platform, user, name)
    finally:
        sim.stop()


def test_v2_registration_for_password_login(platform, user, tmp_path):
    auth = v2_auth(platform, user)
    status, body = platform.http("POST", "/devices/device", {**auth, "devicename": "pw-v2", "login": "password"})
    assert status == 200 and body["device"]["username"] == body["device"]["deviceid"] and body["device"]["password"]
    credentials = {"host": "127.0.0.1", "amqp_port": platform.ports["amqp"], "username": body["device"]["username"],
                   "broker_password": body["device"]["password"]}
    sim = password_simulator("amqp", credentials)
    try:
        user.wait_for_connection("pw-v2", "online")
        status, answer = platform.http("POST", "/devices/device/status", {**auth, "devicename": "pw-v2"})
        assert (status, answer["value"]) == (200, "running")
    finally:
        sim.stop()
    status, body = platform.http("POST", "/devices/device", {**auth, "devicename": "pw-v2b", "login": "sometimes"})
    assert (status, body["status"]) == (400, "NG")


def test_wrong_certificate_unregistered_and_rotated_passwords_are_refused(platform, user, tmp_path):
    name, path = user.device(tmp_path, login="password")
    credentials = json.loads(path.read_text())
    cert_name, cert_path = user.device(tmp_path)
    certificate_device = json.loads(cert_path.read_text())
    assert "broker_password" not in certificate_device
    assert user("GET", f"/v1/devices/{cert_name}")[1]["login"] == "certificate"
    status, problem = user("POST", f"/v1/devices/{cert_name}/password")
    assert status == 409 and problem["type"] == "/problems/password-login-not-enabled"
    # A certificate device never logs in by password (its id with any password: here another device's).
    for kind in ("mqtt", "amqp"):
        refused = password_simulator(kind, {**certificate_device, "username": certificate_device["device_id"]},
                                     credentials["broker_password"])
        refused.wait_for(r"refused|failed|not authori[sz]ed|ACCESS_REFUSED|retrying", timeout=20)
        refused.stop()
        good = credentials["broker_password"]
        wrong = password_simulator(kind, credentials, ("y" if good[0] == "x" else "x") + good[1:])
        wrong.wait_for(r"refused|failed|not authori[sz]ed|ACCESS_REFUSED|retrying", timeout=20)
        wrong.stop()
    assert user("GET", f"/v1/devices/{name}")[1]["connection"] == "offline"
    assert user("GET", f"/v1/devices/{cert_name}")[1]["connection"] == "offline"

    # Rotation: the device online with the old password is disconnected before the answer and cannot return.
    sim = password_simulator("mqtt", credentials)
    user.wait_for_connection(name, "online")
    platform.wait_until_listed(credentials["device_id"])
    started = time.monotonic()
    before = user("GET", f"/v1/devices/{name}")[1]["password_set_at"]
    status, rotated = user("POST", f"/v1/devices/{name}/password")
    assert status == 200 and rotated["broker_password"] != credentials["broker_password"]
    assert user("GET", f"/v1/devices/{name}")[1]["password_set_at"] not in (None, before)  # read-your-writes
    assert time.monotonic() - started < 5
    sim.wait_for(r"disconnected|connection lost|lost", timeout=10)
    user.wait_for_connection(name, "offline")
    sim.stop()
    fresh = password_simulator("mqtt", credentials, rotated["broker_password"])
    user.wait_for_connection(name, "online")
    fresh.stop()
    user.wait_for_connection(name, "offline")
    # Unregistered: the password it had is refused.
    assert user("DELETE", f"/v1/devices/{name}")[0] == 204
    gone = password_simulator("amqp", credentials, rotated["broker_password"])
    gone.wait_for(r"refused|failed|not authori[sz]ed|ACCESS_REFUSED|retrying", timeout=20)
    gone.stop()
