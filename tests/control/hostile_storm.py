"""A hostile device and what the platform must make of it: a storm of malformed, oversized, deeply
nested, wrong-topic, wrong-type and binary MQTT messages from a registered device, each with the
fate the broker or the gateway must give it, and the gateway's own count of what it refused."""

from __future__ import annotations

import json
import queue
import random
import ssl
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

# Fates: the gateway's MessageTally outcomes, plus publishes the broker itself refuses.
MALFORMED, UNSOLICITED, BAD_TOPIC, REJECTED = "malformed", "unsolicited", "bad_topic", "rejected"
REFUSED_BY_BROKER = "refused_by_broker"
STORM_APIS = ("get_gpio", "set_rtc", "get_ip", "set_uart", "format_disk")  # never get_status: see answer_call
CHUNK = 200  # publishes in flight before waiting for their PUBACKs (bounds the client's memory)


def _nested(depth: int) -> bytes:
    return b'{"value": ' + b"[" * depth + b"]" * depth + b"}"


def _objects(depth: int) -> bytes:
    return b'{"value": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"


def _binary(rng: random.Random) -> bytes:
    return b"\xff" + rng.randbytes(rng.randint(0, 1023))  # 0xff never occurs in UTF-8


def _oversized(rng: random.Random) -> bytes:
    return b'{"value": "' + b"x" * (64 * 1024 + rng.randint(0, 60000)) + b'"}'


# (kind, fate, topic under server/<id>/ or None for a storm api, payload maker)
KINDS = [
    ("deeply nested arrays", MALFORMED, None, lambda rng: _nested(rng.randint(33, 30000))),
    ("deeply nested objects", MALFORMED, None, lambda rng: _objects(rng.randint(33, 9000))),
    ("nesting never closed", MALFORMED, None, lambda rng: b'{"value": ' + b"[" * rng.randint(33, 60000)),
    ("oversized", MALFORMED, None, _oversized),
    ("binary", MALFORMED, None, _binary),
    ("UTF-16", MALFORMED, None, lambda rng: '{"value": 1}'.encode("utf-16")),
    ("lone surrogate", MALFORMED, None, lambda rng: b'{"value": "\\udc00"}'),
    ("NaN", MALFORMED, None, lambda rng: b'{"value": NaN}'),
    ("float overflow", MALFORMED, None, lambda rng: b'{"value": 1e999999}'),
    ("60,000 digits", MALFORMED, None, lambda rng: b'{"value": ' + b"9" * 60000 + b"}"),
    ("repeated key", MALFORMED, None, lambda rng: b'{"value": 1, "value": 2}'),
    ("event store's reserved shape", MALFORMED, None, lambda rng: b'{"value": {"_type_": "x", "_data_": 1}}'),
    ("truncated JSON", MALFORMED, None, lambda rng: b'{"value": 1'),
    ("wrong type: array", MALFORMED, None, lambda rng: b"[1, 2, 3]"),
    ("wrong type: string", MALFORMED, None, lambda rng: b'"running"'),
    ("wrong type: number", MALFORMED, None, lambda rng: b"42"),
    ("wrong type: null", MALFORMED, None, lambda rng: b"null"),
    ("object without value", MALFORMED, None, lambda rng: b'{"number": 1}'),
    ("empty", MALFORMED, None, lambda rng: b""),
    ("unsolicited answer", UNSOLICITED, None, lambda rng: b'{"value": 1}'),
    ("foreign correlation id", UNSOLICITED, None,
     lambda rng: json.dumps({"value": 1, "correlation_id": str(uuid.UUID(int=rng.getrandbits(128)))}).encode()),
    ("odd api name", UNSOLICITED, "g\u00e9t status", lambda rng: b'{"value": 1}'),
    ("too many topic levels", BAD_TOPIC, "get_status/again", lambda rng: b'{"value": 1}'),
    ("binary on a deep topic", BAD_TOPIC, "a/b/c", _binary),
]

MALFORMED_KINDS = [kind for kind in KINDS if kind[1] == MALFORMED and kind[2] is None]


@dataclass
class StormReport:
    sent: Counter = field(default_factory=Counter)     # fate -> messages
    kinds: Counter = field(default_factory=Counter)    # kind -> messages
    rejected_calls: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.sent.values())


class HostileDevice:
    """A registered device (its own certificate) that publishes whatever it is told, over MQTTS.
    The broker closes its connection on a forbidden topic; it then connects again."""

    def __init__(self, credentials: Path):
        data = json.loads(credentials.read_text())
        self.device_id, self.host, self.port = data["device_id"], data["host"], data["mqtt_port"]
        self.folder = credentials.parent / f"hostile-{self.device_id[:8]}"
        self.folder.mkdir(exist_ok=True)
        for key in ("ca", "certificate", "private_key"):
            (self.folder / key).write_text(data[key])
        self.requests: queue.Queue = queue.Queue()
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        self.subscribed, self.disconnected = threading.Event(), threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.device_id,
                             protocol=mqtt.MQTTv311, clean_session=True, reconnect_on_failure=False)
        client.tls_set(ca_certs=str(self.folder / "ca"), certfile=str(self.folder / "certificate"),
                       keyfile=str(self.folder / "private_key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.max_inflight_messages_set(CHUNK)
        client.on_connect = lambda c, u, f, rc, p: rc.is_failure or c.subscribe(f"{self.device_id}/#", qos=1)
        client.on_subscribe = lambda *a: self.subscribed.set()
        client.on_message = lambda c, u, m: self.requests.put((m.topic, m.payload))
        client.on_disconnect = lambda *a: self.disconnected.set()
        client.connect(self.host, self.port)
        client.loop_start()
        self.client = client
        assert self.subscribed.wait(15), "the hostile device did not connect and subscribe"

    def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        """Publishes at QoS 1 and returns once the broker acknowledged every one (it has routed them)."""
        infos = [self.client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published(), "the broker did not acknowledge a publish"

    def publish_forbidden(self, topic: str, payload: bytes) -> None:
        """The broker refuses the topic by closing the connection; the device connects again."""
        self.client.publish(topic, payload, qos=1)
        assert self.disconnected.wait(15), f"the broker accepted a publish on {topic}"
        self.client.loop_stop()
        self.reconnects += 1
        self._connect()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def storm(device: HostileDevice, count: int, call_hostile, rejected_calls: int, other_device_id: str,
          seed: int = 6) -> StormReport:
    """Sends `count` hostile messages: 1 % on topics the broker refuses, `rejected_calls` malformed
    answers to real calls (`call_hostile()` starts one and returns its id), the rest on the device's
    own answer topics. Returns what was sent, by fate."""
    rng = random.Random(seed)
    report = StormReport(started=time.monotonic())
    forbidden = [f"server/{other_device_id}/get_status", f"{device.device_id}/get_status", "iotcloud/anything"]
    answer_every = max(1, count // max(1, rejected_calls))
    batch: list[tuple[str, bytes]] = []
    for i in range(count):
        if i % 100 == 50:
            device.publish_all(batch)
            batch.clear()
            device.publish_forbidden(forbidden[(i // 100) % len(forbidden)], b'{"value": 1}')
            report.sent[REFUSED_BY_BROKER] += 1
            report.kinds["forbidden topic"] += 1
        elif i % answer_every == answer_every // 4 and len(report.rejected_calls) < rejected_calls:
            device.publish_all(batch)
            batch.clear()
            make = MALFORMED_KINDS[i % len(MALFORMED_KINDS)][3]
            report.rejected_calls.append(answer_call(device, call_hostile, make(rng)))
            report.sent[REJECTED] += 1
            report.kinds["malformed answer to a call"] += 1
        else:
            kind, fate, topic, make = KINDS[i % len(KINDS)]
            topic = topic or STORM_APIS[i % len(STORM_APIS)]
            batch.append((f"server/{device.device_id}/{topic}", make(rng)))
            report.sent[fate] += 1
            report.kinds[kind] += 1
            if len(batch) >= CHUNK:
                device.publish_all(batch)
                batch.clear()
    device.publish_all(batch)
    report.finished = time.monotonic()
    return report


def answer_call(device: HostileDevice, call_hostile, payload: bytes) -> str:
    """Starts a get_status call on the hostile device and answers it with `payload` once it arrives."""
    command_id = call_hostile()
    topic, _ = device.requests.get(timeout=30)
    assert topic == f"{device.device_id}/get_status", topic
    device.publish_all([(f"server/{device.device_id}/get_status", payload)])
    return command_id


class CallSampler:
    """Calls other devices in a loop from a few threads and keeps (start, latency, ok) per call."""

    def __init__(self, call, names: list[str], threads_per_device: int = 1):
        self._call, self._names = call, names
        self._stop = threading.Event()
        self.samples: list[tuple[float, float, bool, str]] = []
        self._threads = [threading.Thread(target=self._run, args=(name,), daemon=True)
                         for name in names for _ in range(threads_per_device)]

    def start(self) -> "CallSampler":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, name: str) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            ok, detail = self._call(name)
            self.samples.append((started, time.monotonic() - started, ok, detail))

    def between(self, start: float, end: float) -> list[tuple[float, float, bool, str]]:
        return [s for s in self.samples if start <= s[0] and s[0] + s[1] <= end]


def percentiles(samples) -> dict:
    latencies = sorted(s[1] * 1000 for s in samples)
    if not latencies:
        return {"calls": 0}
    cut = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {"calls": len(latencies), "p50_ms": round(cut[49], 1), "p99_ms": round(cut[98], 1),
            "max_ms": round(latencies[-1], 1)}


def gateway_refusals(log_path: Path, device_id: str, since: int = 0) -> Counter:
    """Sums the gateway's 'device messages refused' summaries for one device from the platform log."""
    counts: Counter = Counter()
    with open(log_path, "rb") as log:
        log.seek(since)
        for line in log:
            if b"device messages refused" not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            for reason, number in entry.get("devices", {}).get(device_id, {}).items():
                if reason != "example":
                    counts[reason] += number
    return counts
