"""Hostile devices against a whole running platform (private RabbitMQ over TLS, gateway, API):
whatever a registered device publishes costs only its own messages; the gateway stays up, other
devices' calls keep working, and every hostile message is accounted for by the broker or the
gateway. The 10,000-message variant is marked `long` (`pytest -m long`, see docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from tests.control.hostile_storm import (BAD_TOPIC, MALFORMED, REFUSED_BY_BROKER, REJECTED, UNSOLICITED,
                                         CallSampler, HostileDevice, gateway_refusals, percentiles, storm)

NESTED = b'{"value": ' + b"[" * 20000 + b"]" * 20000 + b"}"
LOOP_FAILURES = (b"gateway loop failed", b"could not handle a device answer", b"dropped a message on the answers")


def wait_for_refusals(platform, device_id: str, since: int, expected: Counter, timeout: float = 60) -> Counter:
    """The gateway logs its counts every few seconds; waits until they reach `expected`."""
    deadline = time.monotonic() + timeout
    while True:
        counted = gateway_refusals(platform.log_path, device_id, since)
        if counted == expected or time.monotonic() > deadline:
            return counted
        time.sleep(0.2)


def loop_failures(platform, since: int) -> list[bytes]:
    with open(platform.log_path, "rb") as log:
        log.seek(since)
        return [line[:300] for line in log if any(failure in line for failure in LOOP_FAILURES)]


def test_a_deeply_nested_answer_costs_only_that_answer(platform, user, raw_device, simulator, tmp_path):
    hostile_name, hostile_credentials = user.device(tmp_path)
    calm_name, calm_credentials = user.device(tmp_path)
    hostile = raw_device(hostile_credentials)
    simulator("mqtt", calm_credentials)
    user.wait_for_connection(hostile_name, "online")
    user.wait_for_connection(calm_name, "online")
    since = platform.log_path.stat().st_size

    status, waiting = user("POST", f"/v1/devices/{hostile_name}/commands", {"api": "get_status", "wait": False})
    assert status == 202
    hostile.wait_request()
    hostile.answer("get_status", NESTED)  # the answer to the call in flight
    hostile.answer("get_gpio", NESTED)    # no call waits for this one

    status, answer = user("GET", f"/v1/devices/{calm_name}/status")
    assert (status, answer.get("value")) == (200, "running"), answer
    rejected = user.wait_for_status(waiting["command_id"], {"failed", "succeeded", "timed_out"})
    assert rejected["status"] == "failed" and "nests deeper than" in rejected["error"], rejected
    assert wait_for_refusals(platform, hostile.device_id, since, Counter({REJECTED: 1, MALFORMED: 1})) == \
        Counter({REJECTED: 1, MALFORMED: 1})
    assert platform.process.poll() is None and loop_failures(platform, since) == []


def test_an_unreadable_outcome_costs_the_api_only_that_outcome(platform, user, simulator, tmp_path):
    """Outcomes come from the gateway only, but they carry device values: whatever one holds, the API's
    outcome consumer drops it and keeps its broker link (a lost link loses the outcomes in between)."""
    import pika

    from gateways.broker.topology import GATEWAY_SERVICE
    from iotcloud.broker import service_address
    from gateways.devices.broker_link import RESULTS_EXCHANGE
    name, credentials = user.device(tmp_path)
    simulator("mqtt", credentials)
    user.wait_for_connection(name, "online")
    since = platform.log_path.stat().st_size
    connection = pika.BlockingConnection(service_address(platform.settings, GATEWAY_SERVICE).parameters())
    channel = connection.channel()
    channel.confirm_delivery()
    for garbage in (b'{"command_id": "x", "result": ' + b"[" * 50000 + b"]" * 50000 + b"}", b"\xff" * 100,
                    b'{"command_id": "x", "result": NaN}', b"[]", b"x" * (2 * 1024 * 1024)):
        channel.basic_publish(RESULTS_EXCHANGE, "", garbage)
    connection.close()
    status, answer = user("GET", f"/v1/devices/{name}/status")
    assert (status, answer.get("value")) == (200, "running"), answer
    deadline = time.monotonic() + 10
    while True:
        logged = platform.log_path.read_bytes()[since:]
        assert b"outcome link to the broker lost" not in logged, "an outcome cost the API its broker link"
        if logged.count(b"dropped an outcome") == 5:
            break
        assert time.monotonic() < deadline, f"the API did not report the outcomes it dropped ({platform.log_path})"
        time.sleep(0.1)


@pytest.mark.parametrize("count", [pytest.param(1500, id="1500-messages"),
                                   pytest.param(10000, id="10000-messages", marks=pytest.mark.long)])
def test_a_hostile_device_storm_leaves_other_devices_calls_working(platform, user, simulator, tmp_path, count):
    hostile_name, hostile_credentials = user.device(tmp_path)
    calm = [user.device(tmp_path) for _ in range(3)]
    for _, credentials in calm:
        simulator("mqtt", credentials)
    hostile = HostileDevice(hostile_credentials)
    try:
        for name in [hostile_name] + [name for name, _ in calm]:
            user.wait_for_connection(name, "online")
        other_id = json.loads(calm[0][1].read_text())["device_id"]

        def call_calm(name: str) -> tuple[bool, str]:
            status, body = user("GET", f"/v1/devices/{name}/status", timeout=60)
            return status == 200 and body.get("value") == "running", f"{status} {body}"[:300]

        def call_hostile() -> str:
            status, body = user("POST", f"/v1/devices/{hostile_name}/commands", {"api": "get_status", "wait": False})
            assert status == 202, body
            return body["command_id"]

        sampler = CallSampler(call_calm, [name for name, _ in calm]).start()
        baseline = 100 if count < 5000 else 600
        deadline = time.monotonic() + 120
        while len(sampler.samples) < baseline:
            assert time.monotonic() < deadline, "the other devices' calls are too slow even before the storm"
            time.sleep(0.05)
        since = platform.log_path.stat().st_size
        calls = max(10, count // 100)
        report = storm(hostile, count, call_hostile, rejected_calls=calls, other_device_id=other_id)
        after = len(sampler.samples)
        while len(sampler.samples) < after + 30:  # the other devices still answer after the storm
            assert time.monotonic() < report.finished + 120, "the other devices' calls stopped after the storm"
            time.sleep(0.05)
        sampler.stop()
    finally:
        hostile.close()

    assert report.total == count and len(report.rejected_calls) == report.sent[REJECTED] == calls
    failures = [sample for sample in sampler.samples if not sample[2]]
    assert failures == [], failures[:5]
    before = [s for s in sampler.samples if s[0] + s[1] <= report.started]
    during = [s for s in sampler.samples if report.started <= s[0] <= report.finished]
    assert during, "no call to another device started during the storm"

    expected = Counter({fate: report.sent[fate] for fate in (MALFORMED, UNSOLICITED, BAD_TOPIC, REJECTED)})
    assert wait_for_refusals(platform, hostile.device_id, since, expected) == expected
    assert report.sent[REFUSED_BY_BROKER] == hostile.reconnects > 0
    for command_id in report.rejected_calls:
        assert user.wait_for_status(command_id, {"failed", "succeeded", "timed_out"})["status"] == "failed"
    assert platform.process.poll() is None and loop_failures(platform, since) == []

    figures = {"messages": count, "by_fate": dict(report.sent), "by_kind": dict(report.kinds),
               "storm_seconds": round(report.finished - report.started, 1),
               "messages_per_second": round(count / (report.finished - report.started)),
               "other_devices": {"before": percentiles(before), "during": percentiles(during)}}
    print("\nhostile storm:", json.dumps(figures))
    if os.environ.get("IOTCLOUD_HOSTILE_REPORT"):
        with open(os.environ["IOTCLOUD_HOSTILE_REPORT"], "w") as out:
            json.dump(figures, out, indent=2)
