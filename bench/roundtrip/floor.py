"""The floor: the raw broker echo round trip through the private node, no platform code in the path.

pika AMQPS (the gateway's service certificate, EXTERNAL) publishes `get_status` with a correlation id
to `<id>.get_status` on amq.topic; the simulated device echoes it on `server.<id>.*`.
"""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

from roundtrip import HOST, say
from roundtrip.cpu import delta
from roundtrip.procstats import brief, percentiles


class Echo:
    def __init__(self, state: Path, amqp_port: int, device_ids: list[str]):
        import pika
        services = state / "broker" / "services" / "iotcloud-gateway"
        ctx = ssl.create_default_context(cafile=str(state / "broker" / "certs" / "ca.pem"))
        ctx.load_cert_chain(str(services / "cert.pem"), str(services / "key.pem"))
        params = pika.ConnectionParameters(host=HOST, port=amqp_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
                                           credentials=pika.credentials.ExternalCredentials(), heartbeat=30,
                                           client_properties={"connection_name": "bench-floor"})
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        queue = f"iotcloud.gateway.bench-floor-{uuid.uuid4().hex[:8]}"
        self.ch.queue_declare(queue, exclusive=True, auto_delete=True)
        for device_id in device_ids:
            self.ch.queue_bind(queue, "amq.topic", f"server.{device_id}.#")
        self.device_ids = device_ids
        self.pending: dict[str, float] = {}
        self.lat: list[float] = []
        self.ch.basic_consume(queue, self._on_message, auto_ack=True)
        self.props = pika.BasicProperties(content_type="application/json", delivery_mode=1)
        self.sent = 0

    def _on_message(self, channel, method, properties, body):
        try:
            cid = json.loads(body).get("correlation_id")
        except ValueError:
            return
        scheduled = self.pending.pop(cid, None)
        if scheduled is not None:
            self.lat.append((time.monotonic() - scheduled) * 1000)

    def reset(self):
        self.pending.clear()
        self.lat.clear()

    def publish(self, scheduled: float):
        cid = f"f{self.sent}-{uuid.uuid4().hex[:6]}"
        device = self.device_ids[self.sent % len(self.device_ids)]
        self.sent += 1
        self.pending[cid] = scheduled
        self.ch.basic_publish("amq.topic", f"{device}.get_status", json.dumps({"correlation_id": cid}).encode(),
                              self.props)

    def drain(self, seconds: float):
        until = time.monotonic() + seconds
        while self.pending and time.monotonic() < until:
            # Returns as soon as a message was dispatched, so the wait adds nothing to the echo's latency.
            self.conn.process_data_events(time_limit=min(0.05, max(0.0, until - time.monotonic())))

    def close(self):
        self.conn.close()


def sequential(echo: Echo, count: int, cpu) -> dict:
    """One echo at a time, `count` of them back to back."""
    echo.reset()
    cpu0, start = cpu(), time.monotonic()
    for _ in range(count):
        echo.publish(time.monotonic())
        echo.drain(5.0)
        if echo.pending:
            break  # lost: a sequential run cannot go on without its answer
    elapsed = time.monotonic() - start
    res = {"calls": count, "answered": len(echo.lat), "lost": len(echo.pending), "duration_s": round(elapsed, 2),
           "latency": percentiles(echo.lat), "cpu": delta(cpu0, cpu(), elapsed, len(echo.lat))}
    say(f"  floor sequential: {len(echo.lat)}/{count} answered; {brief(res['latency'])}")
    return res


def open_loop(echo: Echo, rate: float, duration: float, cpu) -> dict:
    echo.reset()
    total = int(rate * duration)
    cpu0 = cpu()
    start = time.monotonic() + 0.05
    i = 0
    while i < total:
        now = time.monotonic()
        due = start + i / rate
        if now >= due:
            echo.publish(due)
            i += 1
            continue
        echo.conn.process_data_events(time_limit=due - now)
    echo.drain(10.0)
    elapsed = time.monotonic() - start
    answered = len(echo.lat)
    res = {"target_rate": rate, "scheduled": total, "answered": answered, "lost": len(echo.pending),
           "achieved_rate": round(answered / elapsed, 1), "latency_from_schedule": percentiles(echo.lat),
           "cpu": delta(cpu0, cpu(), elapsed, answered)}
    say(f"  floor {rate:g}/s: {answered}/{total} answered; {brief(res['latency_from_schedule'])}")
    return res


def saturated(echo: Echo, window: int, duration: float, cpu) -> dict:
    """Keeps `window` echoes outstanding (as many as the platform's saturated run has clients)."""
    echo.reset()
    cpu0, start = cpu(), time.monotonic()
    while time.monotonic() - start < duration:
        while len(echo.pending) < window:
            echo.publish(time.monotonic())
        echo.conn.process_data_events(time_limit=0.001)
    answered = len(echo.lat)
    elapsed = time.monotonic() - start
    sat_cpu = delta(cpu0, cpu(), elapsed, answered)
    echo.drain(5.0)
    res = {"window": window, "duration_s": round(elapsed, 2), "answered": answered,
           "throughput": round(answered / elapsed, 1), "latency": percentiles(echo.lat[:answered]), "cpu": sat_cpu}
    say(f"  floor saturated (window {window}): {res['throughput']} echoes/s")
    return res


def echo_phase(state: Path, amqp_port: int, device_ids: list[str], phase, *args) -> dict:
    """One floor phase (`phase(echo, *args)`) on a connection of its own: while it is open its queue gets a
    copy of every device answer, so it is closed again before the platform's phase."""
    echo = Echo(state, amqp_port, device_ids)
    try:
        for _ in range(20):  # the first echoes open the device's consumers and caches: not the floor
            echo.publish(time.monotonic())
            echo.drain(5.0)
        return phase(echo, *args)
    finally:
        echo.close()
