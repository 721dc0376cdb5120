"""REST set-up (sign-up, registration, presence) and the open- and closed-loop load generators."""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import time
from pathlib import Path

from roundtrip import APIS, VENV_BIN, say
from roundtrip.httpclient import Http, HttpError
from roundtrip.procstats import cpu_delta, percentiles, sh
from roundtrip.services import Platform


async def sign_up(http: Http, platform: Platform) -> None:
    user = {"username": "bench", "password": "bench horse battery staple", "email": "bench@example.com",
            "given_name": "Bench", "family_name": "Mark"}
    await http.json("POST", "/v1/auth/signup", user)
    code = None
    for _ in range(50):
        out = sh(str(VENV_BIN / "iotcloud"), "outbox", "--json", "--to", user["email"],
                 env={**platform.env}, timeout=30)
        match = re.search(r"code is (\d{6})", out)
        if match:
            code = match.group(1)
            break
        await asyncio.sleep(0.2)
    if code is None:
        raise RuntimeError("no confirmation code in the outbox")
    await http.json("POST", "/v1/auth/confirm", {"username": user["username"], "code": code})
    tokens = await http.json("POST", "/v1/auth/login", {"username": user["username"], "password": user["password"]})
    http.token = tokens["access_token"]


async def register(http: Http, names: list[str], creds_dir: Path, correlation_ids: bool, parallel: int = 4) -> float:
    creds_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    queue = collections.deque(names)
    done = 0
    last = time.monotonic()

    async def worker():
        nonlocal done, last
        while queue:
            name = queue.popleft()
            request = json.dumps({"name": name, "correlation_ids": correlation_ids}).encode()
            for attempt in range(6):  # over a cap (429) or not ready (503): nothing was registered, retry
                status, data = await http.call("POST", "/v1/devices", request)
                if status not in (429, 503) or attempt == 5:
                    break
                await asyncio.sleep(0.25 * 2 ** attempt)
            if status != 201:
                raise HttpError(f"POST /v1/devices {name} -> {status}: {data[:300]!r}")
            body = json.loads(data)
            path = creds_dir / f"{name}.json"
            path.write_text(json.dumps(body))
            path.chmod(0o600)
            done += 1
            if time.monotonic() - last > 5:
                last = time.monotonic()
                say(f"  registered {done}/{len(names)} devices ({done / (last - started):.1f}/s)")
    await asyncio.gather(*(worker() for _ in range(parallel)))
    return time.monotonic() - started


async def wait_online(http: Http, expected: int, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    online = 0
    while time.monotonic() - started < timeout:
        online, offset = 0, 0
        while True:
            page = await http.json("GET", f"/v1/devices?limit=100&offset={offset}")
            online += sum(1 for d in page["items"] if d["connection"] == "online")
            offset += len(page["items"])
            if not page.get("next"):
                break
        if online >= expected:
            break
        await asyncio.sleep(1.0)
    return online, time.monotonic() - started


async def connect_fleet(fleet, http: Http, platform: Platform, count: int, connect_timeout: float,
                        online_timeout: float) -> tuple[float, int, float]:
    """Starts the fleet simulator and waits until the device list shows its devices online."""
    say(f"starting simulators.fleet with {count} devices")
    connected = fleet.start(count, connect_timeout)
    platform.extra_pids["fleet simulator"] = fleet.pid
    online, waited = await wait_online(http, count, online_timeout)
    say(f"  {online}/{count} devices show connection: online ({waited:.1f} s)")
    return connected, online, waited


# ----------------------------------------------------------------------------------- REST load

class Slots:
    """Free (device, api) pairs; with correlation ids every pair may have several calls in flight."""

    def __init__(self, names: list[str], apis: list[str], unlimited: bool):
        pairs = [(n, a) for n in names for a in apis]
        random.Random(7).shuffle(pairs)
        self.unlimited = unlimited
        self.cycle = pairs
        self.i = 0
        self.free: asyncio.Queue = asyncio.Queue()
        for pair in pairs:
            self.free.put_nowait(pair)

    async def take(self):
        if self.unlimited:
            self.i += 1
            return self.cycle[self.i % len(self.cycle)]
        return await self.free.get()

    def give(self, pair):
        if not self.unlimited:
            self.free.put_nowait(pair)


def raw_request(http: Http, name: str, api: str, timeout: float) -> bytes:
    method, path, body = APIS[api]
    return http.build(method, path.format(name=name) + f"?timeout={timeout:g}", body)


class Recorder:
    def __init__(self):
        self.lat, self.service, self.errors, self.statuses = [], [], 0, collections.Counter()
        self.done = 0
        self.dropped = 0
        self.error_samples: list[str] = []

    def error(self, what: str):
        self.errors += 1
        self.statuses[what] += 1
        if len(self.error_samples) < 5 and what not in self.error_samples:
            self.error_samples.append(what)


async def one_call(http: Http, slots: Slots, rec: Recorder, scheduled: float, timeout: float,
                   raws: dict, max_queue: float = 10.0) -> None:
    try:
        pair = await asyncio.wait_for(slots.take(), max(0.001, scheduled + max_queue - time.monotonic()))
    except asyncio.TimeoutError:
        # Never sent: every (device, api) slot stayed busy for max_queue s. Charged as an error whose
        # latency is at least max_queue (coordinated omission: the server is blamed for the delay).
        rec.error(f"not sent: no free device/api slot within {max_queue:g} s")
        rec.dropped += 1
        rec.lat.append((time.monotonic() - scheduled) * 1000)
        rec.done += 1
        return
    sent = time.monotonic()
    try:
        status, body = await http.call("", "", raw=raws[pair], timeout=timeout + 5)
        end = time.monotonic()
        rec.statuses[status] += 1
        if status == 200:
            rec.lat.append((end - scheduled) * 1000)
            rec.service.append((end - sent) * 1000)
        else:
            rec.error(f"{status} {body[:160].decode('utf-8', 'replace')}")
            rec.lat.append((end - scheduled) * 1000)
    except Exception as exc:  # noqa: BLE001
        rec.error(f"{type(exc).__name__}: {exc}")
        rec.lat.append((time.monotonic() - scheduled) * 1000)
    finally:
        rec.done += 1
        slots.give(pair)


async def open_loop(http: Http, names: list[str], apis: list[str], rate: float, duration: float, timeout: float,
                    correlation: bool, platform: Platform, label: str) -> dict:
    slots = Slots(names, apis, correlation)
    raws = {(n, a): raw_request(http, n, a, timeout) for n in names for a in apis}
    rec = Recorder()
    total = int(rate * duration)
    tasks = []
    sampler = platform.sampler()
    if sampler:
        sampler.__enter__()
    cpu0 = platform.cpu()
    start = time.monotonic() + 0.05
    next_report = start + 2.0
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one_call(http, slots, rec, scheduled, timeout, raws)))
        now = time.monotonic()
        if now >= next_report:
            next_report = now + 2.0
            say(f"  {label}: scheduled {i + 1}/{total} done {rec.done} errors {rec.errors} "
                f"in flight {i + 1 - rec.done}")
    send_end = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout + 30)
    except asyncio.TimeoutError:
        rec.error("client gave up waiting at the end")
    elapsed = time.monotonic() - start
    cpu1 = platform.cpu()
    if sampler:
        sampler.__exit__()
    result = {"target_rate": rate, "duration_s": duration, "scheduled": total, "completed": rec.done,
              "errors": rec.errors, "not_sent": rec.dropped,
              "achieved_rate": round((rec.done - rec.errors) / elapsed, 1),
              "send_lag_s": round(send_end - (start + (total - 1) / rate), 3),
              "latency_from_schedule": percentiles(rec.lat), "service_time": percentiles(rec.service),
              "statuses": {str(k): v for k, v in rec.statuses.items()}, "error_samples": rec.error_samples,
              "cpu": cpu_delta(cpu0, cpu1, elapsed, rec.done)}
    if sampler:
        result["postgres_activity"] = sampler.summary()
    lat = result["latency_from_schedule"]
    say(f"  {label}: {rec.done} calls, {rec.errors} errors, {result['achieved_rate']}/s; "
        f"p50 {lat.get('p50_ms')} p90 {lat.get('p90_ms')} p99 {lat.get('p99_ms')} max {lat.get('max_ms')} ms")
    return result


async def closed_loop(http: Http, names: list[str], apis: list[str], clients: int, duration: float, timeout: float,
                      correlation: bool, platform: Platform, label: str, during=None) -> dict:
    slots = Slots(names, apis, correlation)
    raws = {(n, a): raw_request(http, n, a, timeout) for n in names for a in apis}
    rec = Recorder()
    sampler = platform.sampler()
    if sampler:
        sampler.__enter__()
    cpu0 = platform.cpu()
    start = time.monotonic()
    stop_at = start + duration
    per_second = []

    async def client():
        while time.monotonic() < stop_at:
            await one_call(http, slots, rec, time.monotonic(), timeout, raws)

    async def report():
        last_done, last_t = 0, start
        while time.monotonic() < stop_at:
            await asyncio.sleep(2.0)
            now = time.monotonic()
            per_second.append(round((rec.done - last_done) / (now - last_t), 1))
            say(f"  {label}: done {rec.done} errors {rec.errors} ({per_second[-1]}/s)")
            last_done, last_t = rec.done, now

    side = asyncio.get_running_loop().run_in_executor(None, during) if during else None
    await asyncio.gather(report(), *(client() for _ in range(clients)))
    elapsed = time.monotonic() - start
    cpu1 = platform.cpu()
    if sampler:
        sampler.__exit__()
    profile = await side if side else None
    result = {"clients": clients, "duration_s": round(elapsed, 2), "completed": rec.done, "errors": rec.errors,
              "throughput": round((rec.done - rec.errors) / elapsed, 1), "per_2s": per_second,
              "latency": percentiles(rec.service), "statuses": {str(k): v for k, v in rec.statuses.items()},
              "error_samples": rec.error_samples, "cpu": cpu_delta(cpu0, cpu1, elapsed, rec.done)}
    if sampler:
        result["postgres_activity"] = sampler.summary()
    if profile:
        result["profile"] = profile
    say(f"  {label}: {result['throughput']} calls/s with {clients} clients, {rec.errors} errors; "
        f"p50 {result['latency'].get('p50_ms')} p99 {result['latency'].get('p99_ms')} ms")
    return result

