"""Every notification flow end to end on a running platform (private RabbitMQ over TLS, gateway,
notifier, API, projector) with simulator devices: device-initiated (the UART keyword), app-initiated
(modern and libpyiotcloud v2 routes, echoed by the device), device-to-device, and the refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.control.conftest import REPO, RunningPlatform
from tests.simulators.sim_helpers import SimProcess

pytestmark = pytest.mark.broker
EMAIL, PHONE = "owner@example.com", "+15551234567"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    running = RunningPlatform(tmp_path_factory.mktemp("notify-platform"),
                              {"IOTCLOUD_NOTIFICATION_DEVICE_PER_MINUTE": "3"})
    yield running
    running.stop()


@pytest.fixture
def simulator():
    started = []

    def start(kind: str, credentials: Path, recipient: str = EMAIL) -> SimProcess:
        command = {"mqtt": [sys.executable, "-m", "simulators.mqtt_device"],
                   "amqp": [sys.executable, "-m", "simulators.amqp_device"],
                   "node": ["node", str(REPO / "simulators/node/device_simulator.js")]}[kind]
        sim = SimProcess([*command, "--credentials", str(credentials), "--notification-recipient", recipient])
        started.append(sim)
        return sim
    yield start
    for sim in started:
        sim.stop()


def outbox(platform, to: str) -> list[dict]:
    listing = subprocess.run([sys.executable, "-m", "iotcloud.cli", "outbox", "--json", "--to", to], env=platform.env,
                             capture_output=True, text=True, check=True).stdout.splitlines()
    return [json.loads(line) for line in listing]


def notifications(user, until, timeout: float = 30.0, **filters) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in filters.items())
    deadline = time.monotonic() + timeout
    while True:
        status, page = user("GET", f"/v1/notifications?{query}")
        assert status == 200, page
        if until(page["notifications"]):
            return page["notifications"]
        assert time.monotonic() < deadline, f"notifications never got there: {page}"
        time.sleep(0.1)


def online(user, name: str) -> None:
    user.wait_for_connection(name, "online", timeout=30)


def owner_with_device(platform, simulator, tmp_path, kind: str = "mqtt"):
    """A new user with one online simulator device: (user, device name)."""
    user = platform.user()
    name, credentials = user.device(tmp_path)
    simulator(kind, credentials)
    online(user, name)
    return user, name


def test_a_device_that_sees_hello_world_on_its_uart_notifies_by_email_and_sms(platform, simulator, tmp_path):
    alice = platform.user()
    by_mail, credentials = alice.device(tmp_path)
    simulator("mqtt", credentials, EMAIL)
    by_text, credentials = alice.device(tmp_path)
    simulator("amqp", credentials, PHONE)
    both, credentials = alice.device(tmp_path)
    simulator("node", credentials, f"{EMAIL},{PHONE}")  # one trigger per listed recipient
    for name in (by_mail, by_text, both):
        online(alice, name)
    for name in (by_mail, by_text, both):
        status, answer = alice("PUT", f"/v1/devices/{name}/uart", {"value": "Hello World"})
        assert status == 200 and answer["value"] == "Hello World", answer
    sent = notifications(alice, lambda docs: len(docs) == 4 and all(d["state"] == "sent" for d in docs))
    assert {(d["device_name"], d["channel"], d["recipient"], d["origin"]) for d in sent} == {
        (by_mail, "email", EMAIL, "device"), (by_text, "sms", PHONE, "device"),
        (both, "email", EMAIL, "device"), (both, "sms", PHONE, "device")}
    assert all(d["message_preview"] == "Hi, How are you …" and d["attempts"] == 1 for d in sent)
    assert [m["body"] for m in outbox(platform, EMAIL) if by_mail in m["subject"]] == ["Hi, How are you today?"]
    assert "Hi, How are you today?" in [m["body"] for m in outbox(platform, PHONE)]


def test_an_app_notification_is_echoed_by_the_device_then_sent_once(platform, simulator, tmp_path):
    alice, name = owner_with_device(platform, simulator, tmp_path)
    to = f"app-{time.time_ns()}@example.com"
    status, accepted = alice("POST", f"/v1/devices/{name}/notifications", {"recipient": to, "message": "modern"})
    assert status == 202, accepted
    [doc] = notifications(alice, lambda docs: docs and docs[0]["state"] == "sent", device=name)
    assert doc["notification_id"] == accepted["notification_id"] and doc["origin"] == "app"
    assert doc["command_id"] == accepted["command_id"]
    status, one = alice("GET", f"/v1/notifications/{accepted['notification_id']}")
    assert status == 200 and one["state"] == "sent"
    assert [m["body"] for m in outbox(platform, to)] == ["modern"]  # the device's echo is not a second request


def test_a_bad_timeout_on_an_online_device_is_a_problem_not_a_crash(platform, simulator, tmp_path):
    """The API's short path waits for the device's line before it records the call: the timeout
    must be checked before that wait, on both call routes."""
    alice, name = owner_with_device(platform, simulator, tmp_path)
    for path, body in ((f"/v1/devices/{name}/notifications", {"recipient": EMAIL, "message": "x", "timeout": "5"}),
                       (f"/v1/devices/{name}/commands", {"api": "get_status", "timeout": {"s": 1}}),
                       (f"/v1/devices/{name}/commands", {"api": "get_status", "ttl": [60]})):
        status, problem = alice("POST", path, body)
        assert status == 400 and problem["type"] == "/problems/validation-failed", problem
        assert problem["field"] == ("ttl" if "ttl" in body else "timeout"), problem
    status, answer = alice("POST", f"/v1/devices/{name}/commands", {"api": "get_status", "timeout": 5})
    assert status == 200 and answer["status"] == "succeeded", answer


def test_the_v2_notification_route(platform, simulator, tmp_path):
    alice, name = owner_with_device(platform, simulator, tmp_path, "node")
    to = f"v2-{time.time_ns()}@example.com"
    status, answer = platform.http("PUT", "/devices/device/notification", {
        "username": alice.username, "token": {"access": alice.token}, "devicename": name, "recipient": to, "message": "v2"})
    assert status == 200 and answer["status"] == "OK", answer
    notifications(alice, lambda docs: docs and docs[0]["state"] == "sent", device=name)
    assert [m["body"] for m in outbox(platform, to)] == ["v2"]


def test_device_to_device_reaches_only_the_owners_own_devices(platform, simulator, tmp_path):
    alice, bob = platform.user(), platform.user()
    sender, sender_credentials = alice.device(tmp_path)
    receiver, receiver_credentials = alice.device(tmp_path)
    foreign, foreign_credentials = bob.device(tmp_path)
    receiver_id = json.loads(receiver_credentials.read_text())["device_id"]
    foreign_id = json.loads(foreign_credentials.read_text())["device_id"]
    simulator("mqtt", sender_credentials, receiver_id)
    receiving = simulator("node", receiver_credentials)
    strange = simulator("amqp", foreign_credentials)
    for user, name in ((alice, sender), (alice, receiver), (bob, foreign)):
        online(user, name)
    # app-initiated, through the sender's echo
    status, _ = alice("POST", f"/v1/devices/{sender}/notifications", {"recipient": receiver_id, "message": "from the app"})
    assert status == 202
    receiving.wait_for(r"notification: from the app", timeout=30)
    # device-initiated: the sender's keyword recipient is the receiver
    assert alice("PUT", f"/v1/devices/{sender}/uart", {"value": "Hello World"})[0] == 200
    receiving.wait_for(r"notification: Hi, How are you today\?", timeout=30)
    delivered = notifications(alice, lambda docs: len(docs) == 2 and all(d["state"] == "sent" for d in docs),
                              device=sender)
    assert {d["channel"] for d in delivered} == {"device"} and {d["provider"] for d in delivered} == {"broker"}
    # to another user's device: refused up front for the app, recorded for both
    status, problem = alice("POST", f"/v1/devices/{sender}/notifications", {"recipient": foreign_id, "message": "no"})
    assert status == 403 and problem["type"] == "/problems/recipient-not-owned", problem
    refused = notifications(alice, lambda docs: len(docs) == 1, state="refused", device=sender)
    assert refused[0]["refusal"]["reason"] == "recipient-not-owned" and refused[0]["recipient"] == foreign_id
    assert "notification: no" not in strange.output()
    assert bob("GET", "/v1/notifications")[1]["notifications"] == []
    assert bob("GET", f"/v1/notifications/{refused[0]['notification_id']}")[0] == 404


def test_a_device_trigger_to_another_users_device_is_refused_and_recorded(platform, simulator, tmp_path):
    alice, bob = platform.user(), platform.user()
    foreign, foreign_credentials = bob.device(tmp_path)
    foreign_id = json.loads(foreign_credentials.read_text())["device_id"]
    name, credentials = alice.device(tmp_path)
    simulator("mqtt", credentials, foreign_id)
    online(alice, name)
    assert alice("PUT", f"/v1/devices/{name}/uart", {"value": "Hello World"})[0] == 200
    [doc] = notifications(alice, lambda docs: docs and docs[0]["state"] == "refused", device=name)
    assert doc["refusal"]["reason"] == "recipient-not-owned" and doc["origin"] == "device"


def test_app_refusals_are_problem_json(platform, simulator, tmp_path):
    alice, name = owner_with_device(platform, simulator, tmp_path)
    status, problem = alice("POST", f"/v1/devices/{name}/notifications", {"recipient": "nobody", "message": "m"})
    assert status == 422 and problem["type"] == "/problems/invalid-recipient", problem
    to = f"limit-{time.time_ns()}@example.com"
    for i in range(3):
        assert alice("POST", f"/v1/devices/{name}/notifications", {"recipient": to, "message": f"m{i}"})[0] == 202
    notifications(alice, lambda docs: len(docs) == 3, state="sent", device=name)
    status, problem = alice("POST", f"/v1/devices/{name}/notifications", {"recipient": to, "message": "m4"})
    assert status == 429 and problem["type"] == "/problems/notification-rate-limited", problem
    refused = notifications(alice, lambda docs: len(docs) == 2, state="refused", device=name)
    assert {d["refusal"]["reason"] for d in refused} == {"invalid-recipient", "notification-rate-limited"}


def test_listing_pages_with_a_cursor_and_filters(platform, simulator, tmp_path):
    alice, name = owner_with_device(platform, simulator, tmp_path)
    for i in range(3):
        assert alice("POST", f"/v1/devices/{name}/notifications",
                     {"recipient": f"p{i}@example.com", "message": f"page {i}"})[0] == 202
    notifications(alice, lambda docs: len(docs) == 3, state="sent")
    status, first = alice("GET", "/v1/notifications?limit=2&channel=email")
    assert status == 200 and len(first["notifications"]) == 2 and first["next"]
    status, second = alice("GET", first["next"])
    assert status == 200 and len(second["notifications"]) == 1 and second["next"] is None
    seen = [d["recipient"] for d in first["notifications"] + second["notifications"]]
    assert seen == ["p2@example.com", "p1@example.com", "p0@example.com"]
    assert alice("GET", "/v1/notifications?channel=sms")[1]["notifications"] == []
    status, problem = alice("GET", "/v1/notifications?state=lost")
    assert status == 400 and problem["type"] == "/problems/validation-failed"


def test_a_trigger_sent_while_the_notifier_is_stopped_then_killed_is_not_lost(platform, simulator, tmp_path):
    import os
    import re
    import signal
    alice, name = owner_with_device(platform, simulator, tmp_path)
    pids = re.findall(r"notifier \[pid (\d+)\]|notifier restarted \(pid (\d+)\)", platform.log_path.read_text())
    notifier = int([p for pair in pids for p in pair if p][-1])
    os.kill(notifier, signal.SIGSTOP)  # frozen: the trigger waits in its durable queue, unacknowledged
    try:
        assert alice("PUT", f"/v1/devices/{name}/uart", {"value": "Hello World"})[0] == 200
        status, page = alice("GET", f"/v1/notifications?device={name}")
        assert page["notifications"] == []
    finally:
        os.kill(notifier, signal.SIGKILL)  # the supervisor starts a new one, which gets the trigger again
    [doc] = notifications(alice, lambda docs: docs and docs[0]["state"] == "sent", timeout=60, device=name)
    assert doc["origin"] == "device" and doc["recipient"] == EMAIL and doc["attempts"] == 1
