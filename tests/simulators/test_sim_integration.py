"""The simulators as subprocesses against real brokers.

* plain Mosquitto on 127.0.0.1:1883 (anonymous) for the Python and Node MQTT simulators and the fleet;
* plain RabbitMQ on 127.0.0.1:5672 (guest/guest) for the AMQP simulator;
* a private Mosquitto with an MQTTS listener requiring client certificates (started here) for the TLS paths.

Every wait is on an event (a log line, a reply) with a timeout.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from sim_helpers import CASES, FIRMWARE, NODE_DIR, PYTHON, TestPKI, new_id, wipe_sessions

RECIPIENT = "owner@example.com"
READY_MQTT = r"subscribed to [0-9a-f]{40}/# \(QoS 1\)"
READY_AMQP = r"connected to .* consuming mqtt-subscription-"


def python_mqtt_cmd(cred: Path) -> list[str]:
    return [PYTHON, "-m", "simulators.mqtt_device", "--credentials", str(cred)]


def node_cmd(cred: Path) -> list[str]:
    return ["node", str(NODE_DIR / "device_simulator.js"), "--credentials", str(cred)]


def firmware_cmd(cred: Path) -> list[str]:
    return [str(FIRMWARE), "--credentials", str(cred)]


def exercise_device(dev_id: str, send, expect) -> None:
    """Drive one device through every API.  ``send(api, bytes)``; ``expect() -> (api, bytes)``."""
    # Seed-format replies (no correlation id) are byte-exact json.dumps output.
    for api, req, reply in CASES:
        send(api, json.dumps(req).encode())
        assert expect() == (api, json.dumps(reply).encode()), (api, req)
    # With correlation ids: echoed back under the same key.
    for i, (api, req, reply) in enumerate(CASES):  # same sequence again, so GPIO state matches
        cid = f"corr-{i}"
        send(api, json.dumps({**req, "correlation_id": cid}).encode())
        got_api, body = expect()
        assert got_api == api
        assert json.loads(body) == {**reply, "correlation_id": cid}
    # Host values.
    send("get_rtc", b"{}")
    api, body = expect()
    assert api == "get_rtc" and abs(json.loads(body)["value"] - time.time()) < 30
    for api in ("get_mac", "get_ip", "get_subnet", "get_gateway"):
        send(api, b'{"correlation_id": 1}')
        got_api, body = expect()
        value = json.loads(body)["value"]
        assert got_api == api and isinstance(value, str) and value
        if api == "get_mac":
            assert len(value.split(":")) == 6 and value == value.upper()
        else:
            assert len(value.split(".")) == 4
    # Keyword notification: the echo, then the device-initiated notification.
    send("write_uart", b'{"value": "Hello World from the test"}')
    assert expect() == ("write_uart", b'{"value": "Hello World from the test"}')
    assert expect() == ("trigger_notification",
                        json.dumps({"recipient": RECIPIENT, "message": "Hi, How are you today?"}).encode())
    # No reply for: a notification to itself, malformed JSON, invalid GPIO, unknown API.  The next reply
    # must be the one to the get_status sent after them (one session, QoS 1: in order).
    send("trigger_notification", json.dumps({"recipient": dev_id, "message": "to myself"}).encode())
    send("get_status", b"{not json")
    send("get_gpio", b'{"number": "five"}')
    send("set_mac", b'{"value": "00:11:22:33:44:55"}')
    send("get_status", b'{"correlation_id": "after-no-replies"}')
    assert expect() == ("get_status", b'{"value": "running", "correlation_id": "after-no-replies"}')


def mqtt_io(probe, dev_id: str):
    probe.watch(f"server/{dev_id}/#")

    def send(api: str, payload: bytes) -> None:
        probe.send(f"{dev_id}/{api}", payload)

    def expect(timeout: float = 10.0):
        topic, payload = probe.expect(timeout)
        prefix = f"server/{dev_id}/"
        assert topic.startswith(prefix), topic
        return topic[len(prefix):], payload

    return send, expect


@pytest.fixture(params=["python", "node", "firmware"])
def mqtt_launcher(request):
    if request.param == "node":
        request.getfixturevalue("node_ready")
        return node_cmd
    if request.param == "firmware":
        request.getfixturevalue("firmware_ready")
        return firmware_cmd
    return python_mqtt_cmd


# ---------------------------------------------------------------------------------------------
# MQTT (Python and Node)


def test_mqtt_simulator_answers_every_api(mqtt_launcher, plain_device, mqtt_probe, sim_factory):
    dev_id, cred = plain_device(notification_recipient=RECIPIENT)
    sim = sim_factory(mqtt_launcher(cred))
    sim.wait_for(READY_MQTT)
    send, expect = mqtt_io(mqtt_probe(), dev_id)
    exercise_device(dev_id, send, expect)
    assert "Hello World from the test" in sim.output()
    assert "notification: to myself" in sim.output()
    assert sim.stop() == 0
    sim.wait_for(r"disconnected", timeout=1)


def test_mqtt_commands_queued_while_offline_arrive_on_reconnect(mqtt_launcher, plain_device, mqtt_probe, sim_factory):
    dev_id, cred = plain_device()
    first = sim_factory(mqtt_launcher(cred))
    first.wait_for(READY_MQTT)
    send, expect = mqtt_io(mqtt_probe(), dev_id)
    assert first.stop(signal.SIGINT) == 0  # clean DISCONNECT; the persistent session stays on the broker
    send("get_status", b'{"correlation_id": "sent-while-offline"}')
    second = sim_factory(mqtt_launcher(cred))
    second.wait_for(r"session_present=True")
    assert expect() == ("get_status", b'{"value": "running", "correlation_id": "sent-while-offline"}')
    assert second.stop() == 0


def test_mqtt_a_request_delivered_twice_runs_once(mqtt_launcher, plain_device, mqtt_probe, sim_factory):
    """What a broker node's death does to a device (MQTT QoS 1 is at least once): the same request,
    correlation id and all, arrives twice. The device runs and answers it once."""
    dev_id, cred = plain_device()
    sim = sim_factory(mqtt_launcher(cred))
    sim.wait_for(READY_MQTT)
    send, expect = mqtt_io(mqtt_probe(), dev_id)
    request = b'{"value": "m:delivered-twice", "correlation_id": "c-twice"}'
    send("write_uart", request)
    assert expect() == ("write_uart", request)
    send("write_uart", request)
    send("get_status", b'{"correlation_id": "c-next"}')
    # Messages to one device arrive in order: had the repeat been answered, its answer would come first.
    assert expect() == ("get_status", b'{"value": "running", "correlation_id": "c-next"}')
    sim.wait_for(r"repeated")
    assert sim.output().count("m:delivered-twice") == 1, sim.output()
    assert sim.stop() == 0


def test_mqtt_simulator_reconnects_after_being_kicked(mqtt_launcher, plain_device, mqtt_probe, sim_factory, mosquitto):
    dev_id, cred = plain_device()
    sim = sim_factory(mqtt_launcher(cred))
    sim.wait_for(READY_MQTT)
    mark = sim.mark()
    wipe_sessions(*mosquitto, [dev_id])  # same client id connects: the broker drops the simulator
    sim.wait_for(r"(connection lost|connection closed).*reconnecting in", start=mark)
    sim.wait_for(READY_MQTT, start=mark, timeout=20)
    send, expect = mqtt_io(mqtt_probe(), dev_id)
    send("get_status", b"{}")
    assert expect() == ("get_status", b'{"value": "running"}')
    assert sim.stop() == 0


def test_mqtt_ignores_other_devices_topics(plain_device, mqtt_probe, sim_factory):
    dev_id, cred = plain_device()
    other_id, _ = plain_device()
    sim = sim_factory(python_mqtt_cmd(cred))
    sim.wait_for(READY_MQTT)
    probe = mqtt_probe()
    probe.watch(f"server/{other_id}/#")
    send, expect = mqtt_io(probe, dev_id)
    probe.send(f"{other_id}/get_status", b"{}")  # nobody answers for the other device
    send("get_status", b"{}")
    assert probe.expect() == (f"server/{dev_id}/get_status", b'{"value": "running"}')
    assert sim.stop() == 0


# ---------------------------------------------------------------------------------------------
# AMQP


class AmqpProbe:
    def __init__(self, host: str, port: int, dev_id: str) -> None:
        import pika

        self.dev_id = dev_id
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            host, port, credentials=pika.PlainCredentials("guest", "guest"), heartbeat=30))
        self.ch = self.conn.channel()
        self.queue = self.ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.ch.queue_bind(self.queue, "amq.topic", routing_key=f"server.{dev_id}.#")
        self._replies = self.ch.consume(self.queue, auto_ack=True, inactivity_timeout=10)

    def send(self, api: str, payload: bytes) -> None:
        self.ch.basic_publish("amq.topic", f"{self.dev_id}.{api}", payload)

    def expect(self):
        method, _props, body = next(self._replies)
        assert method is not None, "no AMQP reply within 10 s"
        prefix = f"server.{self.dev_id}."
        assert method.routing_key.startswith(prefix), method.routing_key
        return method.routing_key[len(prefix):], body

    def close(self) -> None:
        try:
            self.ch.cancel()
            self.conn.close()
        except Exception:
            pass


def test_amqp_simulator_answers_every_api(rabbitmq, tmp_path, sim_factory):
    dev_id = new_id()
    cred = tmp_path / "device.json"
    cred.write_text(json.dumps({"device_id": dev_id, "host": rabbitmq[0], "amqp_port": rabbitmq[1], "mqtt_port": 1883,
                                "tls": False, "notification_recipient": RECIPIENT, "unrelated": "ignored"}))
    sim = sim_factory([PYTHON, "-m", "simulators.amqp_device", "--credentials", str(cred)])
    sim.wait_for(READY_AMQP)
    probe = AmqpProbe(*rabbitmq, dev_id)
    try:
        exercise_device(dev_id, probe.send, probe.expect)
        # The seed's queue name and binding.
        probe.ch.queue_declare(f"mqtt-subscription-{dev_id}qos1", passive=True)
    finally:
        probe.close()
    assert "Hello World from the test" in sim.output()
    assert sim.stop() == 0
    sim.wait_for(r"stopped: \d+ requests", timeout=1)


def test_amqp_simulator_retries_until_broker_reachable(tmp_path, sim_factory):
    cred = tmp_path / "device.json"
    cred.write_text(json.dumps({"device_id": new_id(), "host": "127.0.0.1", "amqp_port": 1, "tls": False}))
    sim = sim_factory([PYTHON, "-m", "simulators.amqp_device", "--credentials", str(cred)])
    sim.wait_for(r"reconnecting in 1\.\d s|reconnecting in 0\.\d s")
    t0 = time.monotonic()
    assert sim.stop() == 0
    assert time.monotonic() - t0 < 5  # SIGTERM ends the backoff wait promptly


# ---------------------------------------------------------------------------------------------
# Fleet


def test_fleet_connects_all_and_answers(plain_device, mqtt_probe, sim_factory, tmp_path):
    n = 25
    ids = [plain_device(notification_recipient=RECIPIENT)[0] for _ in range(n)]
    cred_dir = tmp_path  # plain_device writes <id>.json into tmp_path
    sim = sim_factory([PYTHON, "-m", "simulators.fleet", "--credentials-dir", str(cred_dir), "--progress-interval", "1"])
    m = sim.wait_for(rf"fleet: all {n} devices connected and subscribed in ([\d.]+) s")
    probe = mqtt_probe()
    for dev_id in ids:
        probe.watch(f"server/{dev_id}/#")
    for dev_id in ids:
        probe.send(f"{dev_id}/get_status", json.dumps({"correlation_id": dev_id}).encode())
    got = {}
    for _ in ids:
        topic, payload = probe.expect()
        got[topic] = json.loads(payload)
    assert got == {f"server/{d}/get_status": {"value": "running", "correlation_id": d} for d in ids}
    # Devices keep separate GPIO state and the keyword notification works.
    probe.send(f"{ids[0]}/set_gpio", b'{"number": 2, "value": 1}')
    assert probe.expect() == (f"server/{ids[0]}/set_gpio", b'{"number": 2, "value": 1}')
    probe.send(f"{ids[1]}/get_gpio", b'{"number": "2"}')
    assert probe.expect() == (f"server/{ids[1]}/get_gpio", b'{"number": 2, "value": 0}')
    probe.send(f"{ids[2]}/write_uart", b'{"value": "Hello World"}')
    assert probe.expect() == (f"server/{ids[2]}/write_uart", b'{"value": "Hello World"}')
    assert probe.expect()[0] == f"server/{ids[2]}/trigger_notification"
    assert sim.stop() == 0
    sim.wait_for(rf"fleet: stopped; peak {n}/{n} subscribed", timeout=1)
    assert float(m.group(1)) < 10


# ---------------------------------------------------------------------------------------------
# TLS (private Mosquitto requiring client certificates)


def _tls_cred(pki, path: Path, host: str, port: int, dev_id: str | None = None, ca: str | None = None) -> tuple[str, Path]:
    dev_id = dev_id or new_id()
    cert, key = pki.issue(dev_id)
    path.write_text(json.dumps({"device_id": dev_id, "ca": ca or pki.ca_pem, "certificate": cert, "private_key": key,
                                "host": host, "mqtt_port": port, "amqp_port": 5671}))
    return dev_id, path


def test_mqtt_over_tls_with_client_certificate(mqtt_launcher, pki, tls_mosquitto, mqtt_probe, sim_factory, tmp_path):
    dev_id, cred = _tls_cred(pki, tmp_path / "device.json", *tls_mosquitto)
    sim = sim_factory(mqtt_launcher(cred))
    sim.wait_for(READY_MQTT)
    probe = mqtt_probe(*tls_mosquitto, tls_context=pki.client_context("backend"))
    send, expect = mqtt_io(probe, dev_id)
    send("get_gpio", b'{"number": "3", "correlation_id": "tls"}')
    assert expect() == ("get_gpio", b'{"number": 3, "value": 0, "correlation_id": "tls"}')
    assert sim.stop() == 0


def test_tls_refuses_a_broker_signed_by_another_ca(mqtt_launcher, pki, tls_mosquitto, sim_factory, tmp_path):

    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = TestPKI(other_dir, name="Some Other CA")
    _, cred = _tls_cred(pki, tmp_path / "device.json", *tls_mosquitto, ca=other.ca_pem)
    sim = sim_factory(mqtt_launcher(cred))
    sim.wait_for(r"(?i)certificate verify failed|unable to (get|verify)|self-signed certificate in certificate chain")
    sim.wait_for(r"retrying in|reconnecting in")
    assert "subscribed to" not in sim.output()
    assert sim.stop() == 0


def test_fleet_over_tls_each_device_with_its_own_certificate(pki, tls_mosquitto, mqtt_probe, sim_factory, tmp_path):
    ids = []
    for i in range(5):
        dev_id, _ = _tls_cred(pki, tmp_path / f"d{i}.json", *tls_mosquitto)
        ids.append(dev_id)
    sim = sim_factory([PYTHON, "-m", "simulators.fleet", "-d", str(tmp_path), "--progress-interval", "1"])
    sim.wait_for(r"fleet: all 5 devices connected and subscribed")
    probe = mqtt_probe(*tls_mosquitto, tls_context=pki.client_context("backend"))
    for dev_id in ids:
        probe.watch(f"server/{dev_id}/#")
        probe.send(f"{dev_id}/get_status", b"{}")
        assert probe.expect() == (f"server/{dev_id}/get_status", b'{"value": "running"}')
    assert sim.stop() == 0
