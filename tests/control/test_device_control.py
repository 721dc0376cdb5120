"""Remote control end to end: REST -> event store -> gateway -> private RabbitMQ (TLS, client
certificates) -> simulated device -> back, through both REST flavours."""

from __future__ import annotations

import time

import pytest

from tests.control.conftest import REPO

V2_READS = [("status", {}, "running"), ("rtc", {}, int), ("mac", {}, str), ("ip", {}, str), ("subnet", {}, str),
            ("gateway", {}, str)]


def v2_auth(platform, user) -> dict:
    token = platform.http("POST", "/user/login", {"username": user.username, "password": "correct horse"})[1]["token"]
    return {"username": user.username, "token": token}


def exercise_every_api(platform, user, name: str) -> None:
    """Every device API through the modern routes and the libpyiotcloud v2 routes."""
    calls = [
        ("PUT", f"/v1/devices/{name}/gpio/5", {"value": 1}, 1),
        ("GET", f"/v1/devices/{name}/gpio/5", None, 1),
        ("PUT", f"/v1/devices/{name}/gpio/5", {"value": 0}, 0),
        ("GET", f"/v1/devices/{name}/status", None, "running"),
        ("PUT", f"/v1/devices/{name}/status", {"value": "restart"}, "restarting"),
        ("PUT", f"/v1/devices/{name}/rtc", {"value": 1700000000}, 1700000000),
        ("PUT", f"/v1/devices/{name}/uart", {"value": "hello device"}, "hello device"),
    ]
    for method, path, body, expected in calls:
        status, answer = user(method, path, body)
        assert status == 200, (path, answer)
        assert answer["status"] == "succeeded" and answer["value"] == expected, (path, answer)
    for api in ("rtc", "mac", "ip", "subnet", "gateway"):
        status, answer = user("GET", f"/v1/devices/{name}/{api}")
        assert status == 200 and answer["value"], (api, answer)
    status, answer = user("PUT", f"/v1/devices/{name}/notification", {"recipient": "ops@example.com", "message": "hi"})
    assert status == 200 and answer["value"] == {"recipient": "ops@example.com", "message": "hi"}, answer

    auth = {**v2_auth(platform, user), "devicename": name}
    status, body = platform.http("PUT", "/devices/device/gpio", {**auth, "number": "7", "value": "1"})
    assert (status, body) == (200, {"status": "OK", "message": "Device accessed successfully.", "value": 1})
    status, body = platform.http("POST", "/devices/device/gpio", {**auth, "number": "7"})
    assert body == {"status": "OK", "message": "Device accessed successfully.", "value": 1}
    for api, params, expected in V2_READS:
        status, body = platform.http("POST", f"/devices/device/{api}", {**auth, **params})
        assert status == 200 and body["status"] == "OK", (api, body)
        assert body["value"] == expected if not isinstance(expected, type) else isinstance(body["value"], expected)
    assert platform.http("PUT", "/devices/device/rtc", {**auth, "value": 1571650000})[1]["value"] == 1571650000
    assert platform.http("PUT", "/devices/device/uart", {**auth, "value": "Hello"})[1]["value"] == "Hello"
    assert platform.http("PUT", "/devices/device/status", {**auth, "value": "restart"})[1]["value"] == "restarting"
    status, body = platform.http("PUT", "/devices/device/notification",
                                 {**auth, "recipient": "ops@example.com", "message": "hi from v2"})
    assert status == 200 and body["status"] == "OK"


@pytest.mark.parametrize("kind", ["mqtt", "amqp", "node", "firmware"])
def test_every_device_api_through_each_simulator_and_both_rest_flavours(platform, user, simulator, tmp_path, kind):
    if kind == "node":
        assert (REPO / "simulators/node/node_modules").exists(), "`make test` runs npm ci in simulators/node"
    name, credentials = user.device(tmp_path)
    simulator(kind, credentials)
    device = user.wait_for_connection(name, "online")
    assert device["last_seen"]
    exercise_every_api(platform, user, name)


def test_device_list_shows_presence(platform, user, simulator, tmp_path):
    name, credentials = user.device(tmp_path)
    assert user("GET", f"/v1/devices/{name}")[1]["connection"] == "offline"
    sim = simulator("mqtt", credentials)
    online = user.wait_for_connection(name, "online")
    sim.stop()
    offline = user.wait_for_connection(name, "offline")
    assert offline["last_seen"] >= online["last_seen"]


def test_offline_device_fails_fast_or_gets_the_command_on_reconnect(platform, user, simulator, tmp_path):
    name, credentials = user.device(tmp_path)
    status, problem = user("GET", f"/v1/devices/{name}/status")
    assert status == 503 and problem["type"] == "/problems/device-offline"
    assert user.wait_for_status(problem["command_id"], {"expired", "failed", "succeeded", "timed_out"})["status"] == "expired"
    # With a time-to-live the call waits in the queue and is delivered once the device connects.
    status, queued = user("POST", f"/v1/devices/{name}/commands",
                          {"api": "set_gpio", "params": {"number": 3, "value": 1}, "ttl": 60, "wait": False})
    assert status == 202 and queued["status"] == "queued"
    assert user("GET", f"/v1/commands/{queued['command_id']}")[1]["status"] == "queued"
    simulator("mqtt", credentials)
    done = user.wait_for_status(queued["command_id"], {"succeeded"})
    assert done["result"] == 1 and done["sent_at"] and done["completed_at"]


def test_silent_device_times_out_and_a_late_answer_is_not_handed_to_the_next_call(platform, user, raw_device, tmp_path):
    name, credentials = user.device(tmp_path)
    device = raw_device(credentials)
    user.wait_for_connection(name, "online")
    status, problem = user("POST", f"/v1/devices/{name}/commands", {"api": "get_gpio", "params": {"number": 1},
                                                                    "timeout": 0.5})
    assert status == 504 and problem["type"] == "/problems/device-timeout"
    topic, payload = device.wait_request()
    assert topic == f"{device.device_id}/get_gpio" and payload == b'{"number": 1}'
    assert user.wait_for_status(problem["command_id"], {"timed_out", "succeeded", "failed"})["status"] == "timed_out"
    device.answer("get_gpio", b'{"number": 1, "value": 1}')   # late: belongs to no command any more
    status, waiting = user("POST", f"/v1/devices/{name}/commands", {"api": "get_gpio", "params": {"number": 1},
                                                                    "wait": False})
    device.wait_request(2)
    device.answer("get_gpio", b'{"number": 1, "value": 0}')
    assert user.wait_for_status(waiting["command_id"], {"succeeded"})["result"] == 0
    assert user("GET", f"/v1/commands/{problem['command_id']}")[1]["status"] == "timed_out"


def test_malformed_answer_fails_the_call_and_the_gateway_carries_on(platform, user, raw_device, tmp_path):
    name, credentials = user.device(tmp_path)
    device = raw_device(credentials)
    user.wait_for_connection(name, "online")
    for sent, garbage in enumerate((b"not json", b"[1, 2]", b'{"no_value": 1}', b"\xff\xfe"), start=1):
        status, waiting = user("POST", f"/v1/devices/{name}/commands", {"api": "get_status", "wait": False})
        device.wait_request(sent)
        device.answer("get_status", garbage)
        failed = user.wait_for_status(waiting["command_id"], {"failed"})
        assert failed["error"]
    status, waiting = user("POST", f"/v1/devices/{name}/commands", {"api": "get_status", "wait": False})
    device.wait_request(5)
    device.answer("get_status", b'{"value": "running"}')
    assert user.wait_for_status(waiting["command_id"], {"succeeded"})["result"] == "running"


def test_requests_are_ft900_json(platform, user, raw_device, tmp_path):
    name, credentials = user.device(tmp_path)
    device = raw_device(credentials)
    user.wait_for_connection(name, "online")
    assert user("PUT", f"/v1/devices/{name}/gpio/12?wait=false", {"value": "1"})[0] == 202
    topic, payload = device.wait_request()
    assert topic == f"{device.device_id}/set_gpio"
    assert payload == b'{"number": 12, "value": 1}'
    assert user("PUT", f"/v1/devices/{name}/notification?wait=false", {"recipient": "a@b.co", "message": "hi"})[0] == 202
    assert device.wait_request(2)[1] == b'{"recipient": "a@b.co", "message": "hi"}'


def test_correlated_devices_may_have_overlapping_calls(platform, user, simulator, tmp_path):
    name, credentials = user.device(tmp_path, correlation_ids=True)
    simulator("mqtt", credentials)
    user.wait_for_connection(name, "online")
    ids = [user("POST", f"/v1/devices/{name}/commands", {"api": "get_gpio", "params": {"number": n}, "wait": False})[1]
           ["command_id"] for n in range(5)]
    for number, command_id in enumerate(ids):
        done = user.wait_for_status(command_id, {"succeeded"})
        assert done["params"] == {"number": number} and done["result"] == 0


def test_bad_calls_are_clear_errors(platform, user, tmp_path):
    name, _ = user.device(tmp_path)
    for body, field in (({"api": "format_disk"}, "api"), ({"api": "set_gpio", "params": {"number": 1}}, "value"),
                        ({"api": "set_gpio", "params": {"number": "x", "value": 1}}, "number"),
                        ({"api": "get_status", "timeout": 1000}, "timeout")):
        status, problem = user("POST", f"/v1/devices/{name}/commands", body)
        assert status == 400 and problem["type"] == "/problems/validation-failed" and problem["field"] == field
    assert user("POST", "/v1/devices/ghost/commands", {"api": "get_status"})[0] == 404
    other = platform.user()
    assert other("GET", f"/v1/devices/{name}/status")[0] == 404
    status, problem = user("GET", "/v1/commands/00000000-0000-0000-0000-000000000000")
    assert status == 404 and problem["type"] == "/problems/command-not-found"


def test_unregistering_disconnects_the_device_and_refuses_it(platform, user, raw_device, tmp_path):
    established_name, established = user.device(tmp_path)
    young_name, young = user.device(tmp_path)
    old_device = raw_device(established)
    platform.wait_until_listed(old_device.device_id)  # established
    started = time.monotonic()
    assert user("DELETE", f"/v1/devices/{established_name}")[0] == 204
    assert old_device.disconnected.wait(5), "the unregistered device is still connected"
    assert time.monotonic() - started < 1.0
    with pytest.raises(AssertionError):
        raw_device(established)
    # A connection opened just before the unregistration is closed as fast (the broker's connection
    # tracking lists it at once; its statistics, asked before, only ~5 s later).
    new_device = raw_device(young)
    started = time.monotonic()
    assert user("DELETE", f"/v1/devices/{young_name}")[0] == 204
    assert new_device.disconnected.wait(5), "the young connection of an unregistered device is still open"
    assert time.monotonic() - started < 1.0


@pytest.mark.serial  # the device's reconnect after the restart races the calls' 5 s timeout on a busy machine
@pytest.mark.parametrize("kind", ["mqtt", "firmware"])
def test_broker_restart_loses_no_accepted_command(platform, user, simulator, tmp_path, kind):
    from iotcloud.broker import embedded_node
    name, credentials = user.device(tmp_path, correlation_ids=True)
    simulator(kind, credentials)
    user.wait_for_connection(name, "online")
    accepted = []
    node = embedded_node(platform.settings)
    logged = len(platform.log_path.read_text())
    for i in range(20):
        status, body = user("POST", f"/v1/devices/{name}/commands",
                            {"api": "get_gpio", "params": {"number": i}, "ttl": 120, "wait": False, "timeout": 10})
        assert status == 202
        accepted.append(body["command_id"])
        if i == 10:
            node.stop()
    # `iotcloud run` supervises the broker: it starts the node again by itself (a second start here would race it).
    deadline = time.monotonic() + 120
    while not node.is_running():
        assert time.monotonic() < deadline, "the supervisor did not restart the broker"
        time.sleep(0.2)
    # A start while the old node's VM still shut down could never boot, and cost its whole start timeout.
    assert "restarting broker failed" not in platform.log_path.read_text()[logged:]
    for i in range(20, 25):
        accepted.append(user("POST", f"/v1/devices/{name}/commands",
                             {"api": "get_status", "ttl": 120, "wait": False})[1]["command_id"])
    final = [user.wait_for_status(cid, {"succeeded", "failed", "timed_out", "expired"}, timeout=90) for cid in accepted]
    assert len(final) == 25
    assert final[-1]["status"] == "succeeded", "the gateway did not reconnect by itself"


@pytest.mark.parametrize("kind", ["mqtt", "firmware"])
def test_an_unregistered_device_is_cut_off_and_cannot_reconnect(platform, user, simulator, tmp_path, kind):
    name, credentials = user.device(tmp_path)
    device = simulator(kind, credentials)
    user.wait_for_connection(name, "online")
    device.wait_for(r"subscribed to [0-9a-f]{40}/# \(QoS 1\)")
    mark = device.mark()
    assert user("DELETE", f"/v1/devices/{name}")[0] == 204
    device.wait_for(r"connection lost|disconnected", start=mark)
    retry = device.mark()
    # It tries again (backoff from 1 s) and the broker refuses it, attempt after attempt.
    device.wait_for(r"refused|failed|connection lost|disconnected", start=retry, timeout=30)
    assert "subscribed to" not in "\n".join(device.lines[mark:])
    assert user("GET", f"/v1/devices/{name}")[0] == 404


@pytest.mark.parametrize("kind", ["mqtt", "node", "firmware"])
def test_a_malformed_request_is_refused_and_the_device_carries_on(platform, user, simulator, tmp_path, kind):
    name, credentials = user.device(tmp_path)
    simulator(kind, credentials)
    user.wait_for_connection(name, "online")
    for body in ({"api": "set_gpio", "params": {"number": "x", "value": 1}}, {"api": "set_gpio", "params": "[]"},
                 {"api": "get_gpio"}):
        status, problem = user("POST", f"/v1/devices/{name}/commands", body)
        assert status == 400 and problem["type"] == "/problems/validation-failed", problem
    status, body = platform.http("PUT", "/devices/device/gpio", {**v2_auth(platform, user), "devicename": name,
                                                                 "number": "seven", "value": "1"})
    assert status >= 400 and body["status"] == "NG", body
    status, answer = user("PUT", f"/v1/devices/{name}/gpio/9", {"value": 1})
    assert status == 200 and answer["value"] == 1, answer


@pytest.mark.parametrize("service,exchange,routing_key", [
    ("iotcloud-gateway", "amq.topic", "server.0123456789abcdef0123456789abcdef01234567.get_status"),
    ("iotcloud-gateway", "amq.topic", "server.0123456789abcdef0123456789abcdef01234567"),
    ("iotcloud-api", "amq.topic", "server.0123456789abcdef0123456789abcdef01234567.get_status"),
    ("iotcloud-api", "iotcloud.results", ""),
    # Only the API passes device answers on to the gateway.
    ("iotcloud-gateway", "iotcloud.answers", "server.0123456789abcdef0123456789abcdef01234567.get_status"),
])
@pytest.mark.parametrize("link", ["loopback", "tls"])
def test_services_have_only_the_rights_their_job_needs(platform, service, exchange, routing_key, link):
    """On the node's loopback listener (password) as over AMQPS (certificate): the same rights."""
    import dataclasses

    import pika
    from iotcloud.broker import service_address
    settings = platform.settings if link == "loopback" else dataclasses.replace(platform.settings, broker_loopback_port=0)
    address = service_address(settings, service)
    assert (address.ssl_context is None) == (link == "loopback")
    connection = pika.BlockingConnection(address.parameters())
    channel = connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        channel.basic_publish(exchange, routing_key, b"{}")
    assert refused.value.reply_code == 403
    channel = connection.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        channel.queue_declare("mqtt-subscription-0123456789abcdef0123456789abcdef01234567qos1", durable=True)
    connection.close()


def test_with_the_short_path_only_the_api_queue_is_bound_to_device_answers(platform, user, simulator, tmp_path):
    """Each answer is routed to one queue: the API's. The gateway's durable queue gets only what the
    API passes on (issue 7 step 50), and a call the gateway sends (wait=false) is still answered."""
    from urllib.parse import quote

    from gateways.broker.topology import ANSWERS_QUEUE
    from iotcloud.broker import admin_client
    admin = admin_client(platform.settings)
    try:
        bindings = admin._get_json(f"/api/queues/%2F/{quote(ANSWERS_QUEUE)}/bindings")
    finally:
        admin.close()
    # "": the default exchange's binding every queue has.
    assert {binding["source"] for binding in bindings} == {"", "iotcloud.answers"}, bindings
    name, credentials = user.device(tmp_path)
    simulator("mqtt", credentials)
    user.wait_for_connection(name, "online")
    status, queued = user("POST", f"/v1/devices/{name}/commands", {"api": "get_status", "wait": False})
    assert status == 202, queued
    assert user.wait_for_status(queued["command_id"], {"succeeded", "failed", "timed_out"})["status"] == "succeeded"
