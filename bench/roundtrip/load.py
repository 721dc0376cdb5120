"""The REST load: sequential calls, open loop at fixed rates, saturated closed loop.

Calls go round-robin over the users (each owns a share of the devices and signs its own calls), so
no one user's bound on waiting calls (gateways/http/capacity.py) is what the benchmark measures.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from dataclasses import dataclass, field

from roundtrip import APIS, say
from roundtrip.cpu import delta
from roundtrip.httpclient import Http
from roundtrip.procstats import brief, percentiles
from roundtrip.services import Platform
from roundtrip.slowest import Slowest, explained
from roundtrip.users import User

SLOW_MS = 1000.0  # a call this slow is reported as the phase ends, with the API's account of it
MAX_QUEUE = 10.0  # s an open-loop call may wait for a free (device, api) slot before it counts as not sent


class Slots:
    """Free (device, api) pairs per user; with correlation ids every pair may have several calls in flight."""

    def __init__(self, owners: dict[str, User], apis: list[str], unlimited: bool):
        self.owner = {name: user.username for name, user in owners.items()}
        self.users = sorted(set(self.owner.values()), key=lambda u: (len(u), u))
        self.unlimited = unlimited
        self.cycle: dict[str, list] = collections.defaultdict(list)
        for name, user in self.owner.items():
            self.cycle[user].extend((name, api) for api in apis)
        self.turn = {user: 0 for user in self.users}
        self.free: dict[str, asyncio.Queue] = {}
        for user in self.users:
            random.Random(7).shuffle(self.cycle[user])
            self.free[user] = asyncio.Queue()
            for pair in self.cycle[user]:
                self.free[user].put_nowait(pair)

    def user_of(self, i: int) -> str:
        return self.users[i % len(self.users)]

    async def take(self, user: str):
        if self.unlimited:
            self.turn[user] += 1
            return self.cycle[user][self.turn[user] % len(self.cycle[user])]
        return await self.free[user].get()

    def give(self, pair):
        if not self.unlimited:
            self.free[self.owner[pair[0]]].put_nowait(pair)


def problem(status: int, body: bytes) -> str:
    """`429 /problems/too-many-waiting-calls: <detail>`: the detail says which bound refused the call."""
    try:
        doc = json.loads(body)
        return f"{status} {doc.get('type')}: {doc.get('detail') or doc.get('title')}"
    except (ValueError, AttributeError):
        return f"{status} {body[:160].decode('utf-8', 'replace')}"


class Recorder:
    def __init__(self):
        # From the scheduled time: every call (errors too) and the answered ones; from the send: answered ones.
        self.lat, self.answered_lat, self.service = [], [], []
        self.errors, self.statuses = 0, collections.Counter()
        self.kinds: collections.Counter = collections.Counter()
        self.done = 0
        self.dropped = 0
        self.error_samples: list[str] = []
        self.slowest = Slowest()

    def error(self, what: str):
        self.errors += 1
        self.statuses[what.split(" ", 1)[0]] += 1
        self.kinds[what.split(";", 1)[0][:160]] += 1
        if len(self.error_samples) < 5 and what not in self.error_samples:
            self.error_samples.append(what)

    @property
    def answered(self) -> int:
        return self.done - self.errors

    def summary(self) -> dict:
        return {"completed": self.done, "errors": self.errors, "not_sent": self.dropped,
                "statuses": {str(k): v for k, v in self.statuses.items()}, "error_kinds": dict(self.kinds),
                "error_samples": self.error_samples}


@dataclass
class Load:
    """One set of devices and apis to call, each request signed with its device owner's token."""

    http: Http
    owners: dict[str, User]
    apis: list[str]
    timeout: float
    correlation: bool
    platform: Platform
    raws: dict = field(init=False)

    def __post_init__(self):
        self.raws = {}
        for name, user in self.owners.items():
            for api in self.apis:
                method, path, body = APIS[api]
                self.raws[(name, api)] = self.http.build(method, path.format(name=name) + f"?timeout={self.timeout:g}",
                                                         body, user.token)

    def slots(self) -> Slots:
        return Slots(self.owners, self.apis, self.correlation)

    async def one_call(self, slots: Slots, user: str, rec: Recorder, scheduled: float,
                       max_queue: float = MAX_QUEUE) -> None:
        try:
            pair = await asyncio.wait_for(slots.take(user), max(0.001, scheduled + max_queue - time.monotonic()))
        except asyncio.TimeoutError:
            # Never sent: every slot of this user stayed busy for max_queue s. Charged as an error whose
            # latency is at least max_queue (coordinated omission: the server is blamed for the delay).
            rec.error(f"not-sent: no free device/api slot within {max_queue:g} s")
            rec.dropped += 1
            rec.lat.append((time.monotonic() - scheduled) * 1000)
            rec.slowest.add(rec.lat[-1], rec.lat[-1], None, user, "not sent")
            rec.done += 1
            return
        sent = time.monotonic()
        request_id, outcome = None, "no answer"
        try:
            status, body, request_id = await self.http.call_named("", "", raw=self.raws[pair], timeout=self.timeout + 5)
            end = time.monotonic()
            rec.lat.append((end - scheduled) * 1000)
            outcome = str(status)
            if status == 200:
                rec.statuses[status] += 1
                rec.answered_lat.append((end - scheduled) * 1000)
                rec.service.append((end - sent) * 1000)
            else:
                rec.error(problem(status, body))
        except Exception as exc:  # noqa: BLE001
            rec.error(f"{type(exc).__name__}: {exc}")
            rec.lat.append((time.monotonic() - scheduled) * 1000)
            outcome = type(exc).__name__
        finally:
            rec.done += 1
            slots.give(pair)
        rec.slowest.add(rec.lat[-1], (sent - scheduled) * 1000, request_id, f"{pair[0]} {pair[1]}", outcome)

    def _measure(self):
        sampler = self.platform.sampler()
        if sampler:
            sampler.__enter__()
        return sampler, self.platform.cpu(), time.monotonic()

    def _finish(self, result: dict, rec: Recorder, measuring, elapsed: float) -> dict:
        sampler, cpu0, _ = measuring
        cpu1 = self.platform.cpu()
        if sampler:
            sampler.__exit__()
            result["postgres_activity"] = sampler.summary()
        result.update(rec.summary())
        result["slowest"] = explained(rec.slowest.calls(), getattr(self.platform, "log_path", None))
        worst = result["slowest"][0] if result["slowest"] else None
        if worst and worst["latency_ms"] >= SLOW_MS:
            api = worst["api"]
            say(f"  the slowest call took {worst['latency_ms']:,.0f} ms ({worst['call']}, {worst['outcome']}): "
                f"{worst['unsent_ms']:,.0f} ms of it before it was sent, "
                + (f"{api['duration_ms']:,.0f} ms in the API" if api else "none in the API's log"))
        # Per call *answered*: a refused call costs little and would flatter the figure.
        result["cpu"] = delta(cpu0, cpu1, elapsed, rec.answered)
        return result

    async def sequential(self, count: int, label: str = "sequential") -> dict:
        """One client, `count` calls back to back, each to the next user in turn."""
        slots = self.slots()
        rec = Recorder()
        measuring = self._measure()
        start = measuring[2]
        next_report = start + 2.0
        for i in range(count):
            await self.one_call(slots, slots.user_of(i), rec, time.monotonic())
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + 2.0
                say(f"  {label}: {rec.done}/{count} done, {rec.errors} errors")
        elapsed = time.monotonic() - start
        result = {"calls": count, "duration_s": round(elapsed, 2), "achieved_rate": round(rec.answered / elapsed, 1),
                  "latency": percentiles(rec.service), "latency_all": percentiles(rec.lat)}
        self._finish(result, rec, measuring, elapsed)
        say(f"  {label}: {count} calls, {rec.errors} errors; {brief(result['latency'])}")
        return result

    async def sequential_for(self, duration: float, during) -> dict:
        """One client back to back for `duration` s while `during()` runs in a thread (a profiler)."""
        slots = self.slots()
        rec = Recorder()
        side = asyncio.get_running_loop().run_in_executor(None, during)
        start = time.monotonic()
        i = 0
        while time.monotonic() < start + duration:
            await self.one_call(slots, slots.user_of(i), rec, time.monotonic())
            i += 1
        result = {"calls": i, "latency": percentiles(rec.service), "profile": await side}
        say(f"  sequential (profiled): {i} calls, {rec.errors} errors; {brief(result['latency'])}")
        return result

    async def open_loop(self, rate: float, duration: float, label: str) -> dict:
        """Calls at fixed times, latency from each call's *scheduled* time (coordinated-omission-correct)."""
        slots = self.slots()
        rec = Recorder()
        total = int(rate * duration)
        tasks = []
        measuring = self._measure()
        start = time.monotonic() + 0.05
        next_report = start + 2.0
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self.one_call(slots, slots.user_of(i), rec, scheduled)))
            now = time.monotonic()
            if now >= next_report:
                next_report = now + 2.0
                say(f"  {label}: scheduled {i + 1}/{total} done {rec.done} errors {rec.errors} "
                    f"in flight {i + 1 - rec.done}")
        send_end = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), self.timeout + 30)
        except asyncio.TimeoutError:
            rec.error("gave-up: the client stopped waiting at the end")
        elapsed = time.monotonic() - start
        result = {"target_rate": rate, "duration_s": duration, "scheduled": total,
                  "achieved_rate": round(rec.answered / elapsed, 1),
                  "send_lag_s": round(send_end - (start + (total - 1) / rate), 3),
                  # Answered calls only: a 429 comes back at once and would flatter the percentiles.
                  "latency_from_schedule": percentiles(rec.answered_lat),
                  "latency_from_schedule_all": percentiles(rec.lat), "service_time": percentiles(rec.service)}
        self._finish(result, rec, measuring, elapsed)
        say(f"  {label}: {rec.done} calls, {rec.errors} errors, {result['achieved_rate']}/s; "
            f"{brief(result['latency_from_schedule'])}")
        return result

    async def closed_loop(self, clients: int, duration: float, label: str, during=None) -> dict:
        """`clients` concurrent clients, client k always calling for user k mod users (throughput)."""
        slots = self.slots()
        rec = Recorder()
        measuring = self._measure()
        start = measuring[2]
        stop_at = start + duration
        per_second = []

        async def client(k: int):
            user = slots.user_of(k)
            while time.monotonic() < stop_at:
                await self.one_call(slots, user, rec, time.monotonic())

        async def report():
            last_done, last_t = 0, start
            while time.monotonic() < stop_at:
                await asyncio.sleep(2.0)
                now = time.monotonic()
                per_second.append(round((rec.done - last_done) / (now - last_t), 1))
                say(f"  {label}: done {rec.done} errors {rec.errors} ({per_second[-1]}/s)")
                last_done, last_t = rec.done, now

        side = asyncio.get_running_loop().run_in_executor(None, during) if during else None
        # The phase ends when the clients stop, not when the reporter's 2 s grid next comes round:
        # waiting for it added up to 2 s of no calls to the elapsed time (1 s for a 15 s phase).
        reporter = asyncio.ensure_future(report())
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.monotonic() - start
        reporter.cancel()
        result = {"clients": clients, "users": len(slots.users), "duration_s": round(elapsed, 2),
                  "throughput": round(rec.answered / elapsed, 1), "per_2s": per_second,
                  "latency": percentiles(rec.service)}
        self._finish(result, rec, measuring, elapsed)
        if side:
            result["profile"] = await side
        say(f"  {label}: {result['throughput']} calls/s with {clients} clients, {rec.errors} errors; "
            f"p50 {result['latency'].get('p50_ms')} p99 {result['latency'].get('p99_ms')} ms")
        return result
