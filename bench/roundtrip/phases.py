"""The run, phase by phase: set-up, warm-up, sequential, open loop, saturated, profile, memory.

Before each measured phase the gateway is let go idle and the idle CPU of every process is measured,
so what the platform burns while nothing is asked of it shows apart from what a call costs; then
the phase's floor (the raw broker echo) runs, then the phase: on a machine shared with other
sessions, a phase and its floor see it alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from roundtrip import say
from roundtrip.cpu import measure_idle, with_idle
from roundtrip.floor import echo_phase
from roundtrip.floor import open_loop as floor_open_loop
from roundtrip.floor import saturated as floor_saturated
from roundtrip.floor import sequential as floor_sequential
from roundtrip.httpclient import Http
from roundtrip.load import Load
from roundtrip.procstats import cpu_seconds, mib, status_kib
from roundtrip.profiling import py_spy
from roundtrip.services import Fleet, Platform
from roundtrip.users import (connect_fleet, plan_concurrency, register, share_out, sign_up_users,
                             waiting_call_caps)


async def settle(platform: Platform, limit: float = 60.0) -> None:
    """Waits until the platform's processes have worked off any backlog (each under 10 % of a core over
    a second). Every consumer of device answers gets a copy of the floor's echoes too: at the saturated
    floor's 2,000+ echoes/s the API's queue backed up and the broker went on delivering it, at a whole
    core, into the idle measurement and the platform's next phase; the gateway records the echoes'
    answers as unsolicited, and the projector and the read store then work those events off."""
    names = ("gateway", "broker (beam.smp)", "projector", "read store (nx-27017)")
    pids = [pid for pid in (*(platform.pids.get(name) for name in names), *platform.api_workers()) if pid]
    started = time.monotonic()
    while pids and time.monotonic() - started < limit:
        before = [cpu_seconds(pid) or 0.0 for pid in pids]
        await asyncio.sleep(1.0)
        if all((cpu_seconds(pid) or 0.0) - used < 0.10 for pid, used in zip(pids, before)):
            break
    if time.monotonic() - started > 2:
        say(f"  waited {time.monotonic() - started:.0f} s for the platform to go idle")


async def idle(platform: Platform, args) -> dict | None:
    """Idle CPU per process; with --wait-quiet measured again (for at most 5 minutes) while other
    sessions keep more than --quiet-pct of the machine's cores busy."""
    if args.idle_seconds <= 0:
        return None
    started = time.monotonic()
    while True:
        await settle(platform)
        found = await asyncio.to_thread(measure_idle, platform.cpu, args.idle_seconds)
        others_pct = (found["others_ms_per_s"] or 0) / 10 / (os.cpu_count() or 1)
        waited = time.monotonic() - started
        if args.wait_quiet <= 0 or others_pct < args.quiet_pct or waited > min(300, args.wait_quiet):
            break
    found["waited_for_quiet_s"] = round(waited, 1)
    say(f"  idle: {found['total_ms_per_s']} ms CPU/s in platform + broker + PostgreSQL over {found['seconds']} s; "
        f"other sessions {others_pct:.0f} % of the machine" + (f" (waited {waited:.0f} s)" if waited > 30 else ""))
    return found


async def measured(platform: Platform, args, run, floor=None, floor_after: bool = False) -> tuple[dict, dict | None]:
    """Runs one phase (`run`: a coroutine function) after measuring the idle CPU before it, and right
    before it its floor (`floor`: a coroutine function too), so both see the shared machine alike.
    `floor_after`: the floor once more right after the phase (`floor_result["after"]`), so that a host
    whose speed drifts within minutes is read on both sides of the phase it is compared with."""
    idle_before = await idle(platform, args)
    floor_result = None
    if floor is not None:
        floor_result = await floor()
        floor_result["idle_before"] = idle_before
        with_idle(floor_result["cpu"], idle_before)
        await settle(platform)  # the gateway and the API work off their copies of the echoes' answers
    result = await run()
    result["idle_before"] = idle_before
    with_idle(result["cpu"], idle_before)
    if floor is not None and floor_after:
        await settle(platform)  # the projector and the read store catch up with the phase first
        floor_result["after"] = await floor()
    return result, floor_result


def profile_targets(platform: Platform) -> dict[str, int]:
    named = {"gateway": platform.pids.get("gateway"), "projector": platform.pids.get("projector"),
             "read store (nx-27017)": platform.pids.get("read store (nx-27017)")}
    named.update({f"api worker {i + 1}": pid for i, pid in enumerate(platform.api_workers())})
    return {name: pid for name, pid in named.items() if pid}


async def profiler(args, prof_dir: Path, platform: Platform, what: str, **how):
    """Settles the platform and returns the py-spy run to start one second into a profiled phase."""
    prof_dir.mkdir(exist_ok=True)
    targets = profile_targets(platform)
    seconds = max(3, args.profile_duration - 3)
    say(f"profiled {what} run: py-spy on {', '.join(targets)} for {seconds:g} s")
    await settle(platform)
    return lambda: (time.sleep(1), py_spy(targets, seconds, prof_dir, **how))[1]


async def run(args, state: Path, result: dict, platform: Platform) -> None:
    apis = [a.strip() for a in args.apis.split(",") if a.strip()]
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    caps = waiting_call_caps(platform.env, args.api_workers)
    clients, n_users, why = plan_concurrency(args.clients, args.users, caps)
    window = args.floor_window or clients
    result["config"].update({"users": n_users, "clients": clients, "floor_window": window, "waiting_call_caps": caps,
                             "concurrency": why})
    say(f"saturated run: {why}")
    http = Http(platform.api_port)
    say(f"signing up, confirming and logging in {n_users} users")
    users = await sign_up_users(http, platform, n_users)
    names = [f"bench-{i:04d}" for i in range(max(args.devices, args.memory_devices))]
    owners = share_out(names, users)
    lat_owners = {name: owners[name] for name in names[:args.devices]}
    lat_dir = state / "creds-latency"
    say(f"registering {args.devices} devices over {n_users} users (correlation_ids={args.correlation_ids})")
    t = await register(http, lat_owners, lat_dir, args.correlation_ids)
    result["setup"]["register_s"] = round(t, 2)
    say(f"  {args.devices} registered in {t:.1f} s")
    fleet = Fleet(lat_dir, state / "fleet.log")
    load = Load(http, lat_owners, apis, args.timeout, args.correlation_ids, platform)
    try:
        connected, online, waited = await connect_fleet(fleet, http, platform, users, args.devices, 120, 60)
        result["setup"]["fleet_connect_s"] = round(connected, 2)
        result["setup"]["online_after_s"] = round(waited, 2)
        device_ids = [json.loads(p.read_text())["device_id"] for p in sorted(lat_dir.glob("*.json"))]

        def floor(phase, *phase_args):
            if args.no_floor:
                return None
            return lambda: asyncio.to_thread(echo_phase, state, platform.ports["amqp"], device_ids, phase,
                                             *phase_args, platform.cpu)
        result["floor"] = {"sequential": None, "open_loop": [], "saturated": None}

        if args.warmup > 0:
            say(f"warm-up: 50/s for {args.warmup:g} s")
            result["warmup"] = await load.open_loop(50, args.warmup, "warm-up")
        say("each phase after its floor: the raw AMQPS echo through the broker to the simulated devices "
            "(no platform code)")
        if args.sequential:
            say(f"sequential: one client, {args.sequential} calls back to back")
            result["sequential"], result["floor"]["sequential"] = await measured(
                platform, args, lambda: load.sequential(args.sequential),
                floor(floor_sequential, args.sequential))
        for rate in rates:
            say(f"open loop at {rate:g} calls/s for {args.duration:g} s")
            at_rate, floor_at_rate = await measured(
                platform, args, lambda: load.open_loop(rate, args.duration, f"{rate:g}/s"),
                floor(floor_open_loop, rate, args.duration))
            result["open_loop"].append(at_rate)
            if floor_at_rate:
                result["floor"]["open_loop"].append(floor_at_rate)
        say(f"saturated closed loop: {clients} clients for {args.saturate_duration:g} s")
        result["saturated"], result["floor"]["saturated"] = await measured(
            platform, args, lambda: load.closed_loop(clients, args.saturate_duration, "saturated"),
            floor(floor_saturated, window, min(10.0, args.saturate_duration)), floor_after=True)
        if args.no_floor:
            del result["floor"]
        # Apart from the measured runs: py-spy takes CPU from the same two cores.
        if args.profile:
            during = await profiler(args, state / "profiles", platform, "saturated", rate=args.profile_rate,
                                   gil=args.profile_gil)
            result["saturated_profiled"] = await load.closed_loop(clients, args.profile_duration,
                                                                  "saturated (profiled)", during)
        if args.profile_sequential:
            during = await profiler(args, state / "profiles-sequential", platform, "sequential (wall clock, every thread)",
                                    rate=500, wall=True)
            result["sequential_profiled"] = await load.sequential_for(args.profile_duration, during)
        result["memory"]["after_load"] = platform.memory()
    finally:
        fleet.stop()

    if args.memory_devices > 0:
        await memory_phase(args, http, platform, users, owners, names, state, result)
    http.close()


async def memory_phase(args, http: Http, platform: Platform, users, owners, names, state: Path, result: dict):
    lat_dir, all_dir = state / "creds-latency", state / "creds-all"
    more = {name: owners[name] for name in names[args.devices:args.memory_devices]}
    all_dir.mkdir(parents=True, exist_ok=True)
    for p in lat_dir.glob("*.json"):
        shutil.copy(p, all_dir / p.name)
    say(f"registering {len(more)} more devices for the memory measurement")
    t = await register(http, more, all_dir, args.correlation_ids, parallel=8)
    result["setup"]["register_more_s"] = round(t, 2)
    result["setup"]["register_more_rate"] = round(len(more) / t, 1) if t else None
    say(f"  {len(more)} registered in {t:.1f} s ({len(more) / t:.1f}/s)")
    big = Fleet(all_dir, state / "fleet-all.log")
    try:
        connected, online, _ = await connect_fleet(big, http, platform, users, args.memory_devices, 600, 120)
        result["setup"]["fleet_all_connect_s"] = round(connected, 2)
        result["setup"]["all_online"] = online
        say("one get_status to every device at 100/s")
        sweep = Load(http, {name: owners[name] for name in names[:args.memory_devices]}, ["get_status"],
                     args.timeout, True, platform)
        result["memory_devices_sweep"] = await sweep.open_loop(100, args.memory_devices / 100, "sweep")
        result["memory"]["with_memory_devices"] = platform.memory()
        result["memory"]["fleet_simulator_rss_mib"] = mib(status_kib(big.pid, "VmRSS"))
        mem = result["memory"]["with_memory_devices"]
        say(f"  memory with {args.memory_devices} devices: platform (python) RSS "
            f"{mem['platform_python_total']['vmrss_mib']} MiB (HWM sum {mem['platform_python_total']['vmhwm_mib']}),"
            f" with broker {mem['platform_with_broker_total']['vmrss_mib']} MiB")
    finally:
        big.stop()
