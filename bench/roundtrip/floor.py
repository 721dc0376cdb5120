"""The floor: the raw broker echo round trip through the private node, no platform code in the path."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path

from roundtrip import HOST, say
from roundtrip.procstats import cpu_delta, percentiles


def broker_floor(state: Path, amqp_port: int, device_ids: list[str], rates: list[float], duration: float,
                 window: int, sat_duration: float, cpu=None) -> dict:
    """Raw AMQPS echo: publish `<id>.get_status` with a correlation id, the device echoes it on server.<id>.*."""
    import pika
    services = state / "broker" / "services" / "iotcloud-gateway"
    ctx = ssl.create_default_context(cafile=str(state / "broker" / "certs" / "ca.pem"))
    ctx.load_cert_chain(str(services / "cert.pem"), str(services / "key.pem"))
    params = pika.ConnectionParameters(host=HOST, port=amqp_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
                                       credentials=pika.credentials.ExternalCredentials(), heartbeat=30,
                                       client_properties={"connection_name": "bench-floor"})
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    queue = f"iotcloud.gateway.bench-floor-{uuid.uuid4().hex[:8]}"
    ch.queue_declare(queue, exclusive=True, auto_delete=True)
    for device_id in device_ids:
        ch.queue_bind(queue, "amq.topic", f"server.{device_id}.#")
    pending: dict[str, float] = {}
    lat: list[float] = []

    def on_message(channel, method, properties, body):
        try:
            cid = json.loads(body).get("correlation_id")
        except ValueError:
            return
        scheduled = pending.pop(cid, None)
        if scheduled is not None:
            lat.append((time.monotonic() - scheduled) * 1000)

    ch.basic_consume(queue, on_message, auto_ack=True)
    props = pika.BasicProperties(content_type="application/json", delivery_mode=1)

    def publish(i: int, scheduled: float):
        cid = f"f{i}-{uuid.uuid4().hex[:6]}"
        pending[cid] = scheduled
        device = device_ids[i % len(device_ids)]
        ch.basic_publish("amq.topic", f"{device}.get_status", json.dumps({"correlation_id": cid}).encode(), props)

    out = {"open_loop": [], "saturated": None}
    for rate in rates:
        pending.clear()
        lat.clear()
        total = int(rate * duration)
        cpu0 = cpu() if cpu else {}
        start = time.monotonic() + 0.05
        i = 0
        while i < total:
            now = time.monotonic()
            due = start + i / rate
            if now >= due:
                publish(i, due)
                i += 1
                continue
            conn.process_data_events(time_limit=due - now)
        drain_until = time.monotonic() + 10
        while pending and time.monotonic() < drain_until:
            conn.process_data_events(time_limit=0.05)
        elapsed = time.monotonic() - start
        res = {"target_rate": rate, "scheduled": total, "answered": len(lat), "lost": len(pending),
               "achieved_rate": round(len(lat) / elapsed, 1), "latency_from_schedule": percentiles(lat)}
        if cpu:
            res["cpu"] = cpu_delta(cpu0, cpu(), elapsed, len(lat))
        p = res["latency_from_schedule"]
        say(f"  floor {rate:g}/s: {len(lat)}/{total} answered; p50 {p.get('p50_ms')} p90 {p.get('p90_ms')} "
            f"p99 {p.get('p99_ms')} max {p.get('max_ms')} ms")
        out["open_loop"].append(res)
    if sat_duration <= 0:
        conn.close()
        return out
    # saturated: keep `window` echoes outstanding
    pending.clear()
    lat.clear()
    cpu0 = cpu() if cpu else {}
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < sat_duration:
        while len(pending) < window:
            publish(i, time.monotonic())
            i += 1
        conn.process_data_events(time_limit=0.001)
    answered = len(lat)
    elapsed = time.monotonic() - start
    sat_cpu = cpu_delta(cpu0, cpu(), elapsed, answered) if cpu else None
    drain_until = time.monotonic() + 5
    while pending and time.monotonic() < drain_until:
        conn.process_data_events(time_limit=0.05)
    out["saturated"] = {"window": window, "duration_s": round(elapsed, 2), "answered": answered,
                        "throughput": round(answered / elapsed, 1), "latency": percentiles(lat), "cpu": sat_cpu}
    say(f"  floor saturated (window {window}): {out['saturated']['throughput']} echoes/s")
    conn.close()
    return out

