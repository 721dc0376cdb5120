#!/usr/bin/env python3
"""Connected-fleet benchmark: N devices (default 10,000) connected over MQTTS at once, each with its own
certificate issued by the platform, and what that costs while they stay connected.

It starts its own platform (`iotcloud run`, PostgreSQL event store in a throw-away database) on free
127.0.0.1 ports, signs a user up, registers N devices through the REST API (certificates from the
platform's signer), then:

  1. connects them with several `simulators.fleet` processes at once (plus a separate simulator of
     --presence-devices devices and one probe device held by this script) and waits until the
     device-list read model shows every device online;
  2. reads RSS of the broker and of every platform process before and after connecting: memory per
     connected device; and CPU of every process over --idle seconds with nothing connected and with the
     fleet connected and quiet (no per-device polling means no CPU growth with the fleet);
  3. open-loop REST device calls at --rate to randomly chosen connected devices, each called for the
     first time since it connected, then again to the same devices, then the raw broker echo (floor) at
     the same rate to the same devices, in the same run (latency from the scheduled send time);
  4. presence: stops the presence simulator (its devices disconnect), times until the read model
     shows them offline, starts it again and times until they show online;
  5. revocation: unregisters the probe device (REST) and times until the broker closes its live
     connection and until a fresh login with its certificate is refused.

Results go to bench/results/<name>.json and the connected-fleet table of docs/benchmarks.md.

    eval "$(bash deploy/test-postgres.sh .state/test-pg)"
    .venv/bin/python bench/connected_fleet.py --name fleet-10k
    .venv/bin/python bench/connected_fleet.py --name fleet-quick --devices 500 --simulators 1 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from roundtrip import say
from roundtrip.brokerstats import broker_node, broker_work
from roundtrip.fleet_report import targets, update_docs
from roundtrip.cpu import INFO_ONLY, LOAD_GENERATOR, WHOLE_MACHINE, delta, measure_idle
from roundtrip.fleets import FleetGroup, split_credentials
from roundtrip.floor import echo_phase
from roundtrip.floor import open_loop as floor_open_loop
from roundtrip.httpclient import Http
from roundtrip.load import Load
from roundtrip.presence import DeviceListWatch, ProbeDevice
from roundtrip.procstats import cpu_seconds, machine, python_loop_s
from roundtrip.runs import check_arguments, finish, interrupt_on_sigterm, stop_platform
from roundtrip.services import Platform, Postgres, find_postgres
from roundtrip.users import register, share_out, sign_up_users
from simulators.credentials import load_credentials


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="result name (bench/results/<name>.json)")
    p.add_argument("--devices", type=int, default=10000, help="devices connected at once (default %(default)s)")
    p.add_argument("--simulators", type=int, default=4, help="simulator processes for the bulk (default %(default)s)")
    p.add_argument("--presence-devices", type=int, default=100, help="devices disconnected and reconnected (default %(default)s)")
    p.add_argument("--max-connecting", type=int, default=16,
                   help="devices between connect and subscribed at once, per simulator (default %(default)s; 0: no cap)")
    p.add_argument("--register-parallel", type=int, default=12, help="registrations in flight (default %(default)s)")
    p.add_argument("--rate", type=float, default=100, help="open-loop device calls/s (default %(default)s)")
    p.add_argument("--duration", type=float, default=30, help="seconds of calls, and of floor echoes (default %(default)s)")
    p.add_argument("--apis", default="get_status", help="device apis the calls use (default %(default)s)")
    p.add_argument("--idle", type=float, default=20, help="seconds of each idle CPU window (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5, help="device timeout per call, s (default %(default)s)")
    p.add_argument("--connect-timeout", type=float, default=1200, help="s to connect the fleet (default %(default)s)")
    p.add_argument("--api-workers", type=int, default=1, help="IOTCLOUD_API_WORKERS (default %(default)s)")
    p.add_argument("--api-threads", type=int, default=32, help="IOTCLOUD_API_THREADS (default %(default)s)")
    p.add_argument("--waiting-per-user", type=int, default=24,
                   help="IOTCLOUD_API_WAITING_CALLS_PER_USER (default %(default)s: one user owns the whole fleet here; "
                        "0: the platform's, a quarter of the threads)")
    p.add_argument("--broker-work", type=float, default=10,
                   help="seconds over which the idle broker's work is broken down by process kind (0: skip)")
    p.add_argument("--broker-work-phases", action="store_true",
                   help="also break the broker's work down during the calls and during the floor's echoes (for "
                        "diagnosis: the sample walks every broker process twice, which the phases' latencies then include)")
    p.add_argument("--log-level", default="INFO", help="IOTCLOUD_LOG_LEVEL of the platform (default %(default)s)")
    p.add_argument("--postgres", metavar="HOST:PORT", help="PostgreSQL trusting user postgres (default: the machine's, "
                   "else deploy/test-postgres.sh); a private cluster keeps a shared server's connection slots free")
    p.add_argument("--keep-state", action="store_true", help="keep the temporary state directory (logs)")
    return p.parse_args(argv)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def idle_cpu(platform: Platform, group: FleetGroup, seconds: float) -> dict:
    """CPU of every process over `seconds` with no calls: what the connected fleet costs by itself."""
    found = measure_idle(lambda: {**platform.cpu(), **group.cpu()}, seconds)
    pct = {n: round(ms / 10, 1) for n, ms in found["ms_per_s"].items()}  # ms of CPU per s -> % of one core
    # The platform's Python processes: not the broker and its helpers, PostgreSQL or the load generator.
    python = [n for n in pct if n not in (*LOAD_GENERATOR, *INFO_ONLY, "broker (beam.smp)", "other platform processes",
                                          "postgres backends (sum)") and not n.startswith("simulator")]
    return {"seconds": found["seconds"], "per_process": pct, "broker_pct": pct.get("broker (beam.smp)"),
            "platform_pct": round(sum(pct[n] for n in python), 1),
            "simulators_pct": round(sum(v for n, v in pct.items() if n.startswith("simulator")), 1),
            "machine_pct": pct.get(WHOLE_MACHINE), "load": loadavg()}


def settle(platform: Platform, limit: float = 60.0) -> None:
    """Until the broker and the gateway have worked off what the last phase left (a quiet second)."""
    # Quiet: the broker's own housekeeping (~0.3 of a core with 10,000 devices) plus a little.
    quiet = {platform.pids.get("broker (beam.smp)"): 0.5, platform.pids.get("gateway"): 0.1}
    quiet.pop(None, None)
    started = time.monotonic()
    while time.monotonic() - started < limit:
        before = {pid: cpu_seconds(pid) or 0.0 for pid in quiet}
        time.sleep(1.0)
        if all((cpu_seconds(pid) or 0.0) - before[pid] < most for pid, most in quiet.items()):
            return


def per_device(before: dict, after: dict, devices: int) -> dict:
    beam = lambda m: next((v["vmrss_mib"] for k, v in m["processes"].items() if "beam" in k), 0.0)  # noqa: E731
    platform = lambda m: m["platform_python_total"]["vmrss_mib"]  # noqa: E731
    return {"broker": round((beam(after) - beam(before)) * 1024 / devices, 1),
            "platform": round((platform(after) - platform(before)) * 1024 / devices, 1)}


async def run(args, state: Path, result: dict, platform: Platform) -> None:
    loop = asyncio.get_running_loop()
    blocking = lambda fn, *a: loop.run_in_executor(None, fn, *a)  # noqa: E731
    apis = [a.strip() for a in args.apis.split(",") if a.strip()]
    http = Http(platform.api_port)
    say("signing up, confirming and logging in")
    owner = await sign_up_users(http, platform, 1)
    names = [f"fleet-{i:05d}" for i in range(args.devices)]
    say(f"registering {args.devices} devices, {args.register_parallel} at a time")
    registered = state / "registered"
    owners = share_out(names, owner)
    t = await register(http, owners, registered, False, parallel=args.register_parallel)
    result["setup"].update(register_s=round(t, 1), register_rate=round(args.devices / t, 1))
    say(f"  {args.devices} registered in {t:.0f} s ({args.devices / t:.0f}/s)")

    bulk = args.devices - args.presence_devices - 1
    sizes = {f"bulk-{i + 1}": bulk // args.simulators + (1 if i < bulk % args.simulators else 0)
             for i in range(args.simulators)}
    sizes.update({"presence": args.presence_devices, "probe": 1})
    folders = split_credentials(registered, sizes, state / "fleets")
    probe_folder = folders.pop("probe")
    group = FleetGroup(folders, state)
    bulk_names = [n for n in group.sizes if n.startswith("bulk")]
    files = {n: sorted(f.glob("*.json")) for n, f in folders.items()}
    ids = {n: [json.loads(p.read_text())["device_id"] for p in paths] for n, paths in files.items()}
    probe = ProbeDevice(load_credentials(next(probe_folder.glob("*.json"))))
    watch = DeviceListWatch(platform.env)
    try:
        await asyncio.sleep(3)
        result["memory"]["before_connect"] = platform.memory()
        result["broker_node"] = {"before_connect": await blocking(broker_node, state, platform.ports["management"])}
        say(f"idle CPU for {args.idle:g} s with {args.devices} devices registered and none connected")
        result["idle_cpu"]["before_connect"] = await blocking(idle_cpu, platform, group, args.idle)

        say(f"connecting {args.devices} devices: {args.simulators} simulators of ~{bulk // args.simulators}, "
            f"one of {args.presence_devices}, one probe device")
        started = time.monotonic()
        cpu0 = {**platform.cpu(), **group.cpu()}
        group.launch(extra=("--max-connecting", str(args.max_connecting)) if args.max_connecting else ())
        await blocking(probe.connect, 120.0)
        await blocking(group.wait, args.connect_timeout, result["setup"].setdefault("connect_progress", []))
        result["setup"]["connect_s"] = round(time.monotonic() - started, 1)
        result["setup"]["connect_failures"] = group.counts()[2]
        say(f"  all connected and subscribed after {result['setup']['connect_s']} s; waiting for the read model")
        online, _ = await blocking(watch.wait_online, args.devices, 600.0, say)
        result["setup"].update(online_after_s=round(time.monotonic() - started, 1), connected_devices=online)
        say(f"  read model: {online}/{args.devices} online {result['setup']['online_after_s']} s after the start")
        platform.extra_pids.update(group.pids())
        spent = delta(cpu0, {**platform.cpu(), **group.cpu()}, time.monotonic() - started, online)
        result["connect_cpu_ms_per_device"] = {n: v["ms_per_call"] for n, v in spent["processes"].items()}
        say(f"  CPU per connected device (ms): { {n: v for n, v in result['connect_cpu_ms_per_device'].items() if v} }")
        await asyncio.sleep(5)
        result["memory"]["connected"] = platform.memory()
        result["broker_node"]["connected"] = await blocking(broker_node, state, platform.ports["management"])
        say(f"  broker: {result['broker_node']['connected']}")
        result["memory"]["simulators"] = group.memory()
        result["memory"]["per_device_kib"] = per_device(result["memory"]["before_connect"],
                                                        result["memory"]["connected"], args.devices)
        say(f"  memory per connected device: {result['memory']['per_device_kib']} KiB")
        say(f"idle CPU for {args.idle:g} s with {online} devices connected")
        result["idle_cpu"]["connected"] = await blocking(idle_cpu, platform, group, args.idle)
        say(f"  broker {result['idle_cpu']['connected']['broker_pct']} %, platform "
            f"{result['idle_cpu']['connected']['platform_pct']} %, simulators {result['idle_cpu']['connected']['simulators_pct']} %")

        if args.broker_work > 0:
            result["broker_work_idle"] = await blocking(broker_work, state, platform.ports["epmd"], args.broker_work)
            say(f"  idle broker's work by process kind: {result['broker_work_idle']}")

        # The devices called: as many as calls are made, drawn at random from the bulk simulators. The first
        # call to a device since it connected is dearer (RabbitMQ 3.10 opens the connection's QoS 1 publishing
        # channel and asks the auth backend about the answer's topic on its first publish): measured apart.
        bulk = sorted((p.stem, d) for b in bulk_names for p, d in zip(files[b], ids[b]))  # <name>.json
        drawn = random.Random(11).sample(bulk, min(len(bulk), int(args.rate * args.duration)))
        load = Load(http, {n: owners[n] for n, _ in drawn}, apis, args.timeout, False, platform)
        drawn_ids = [d for _, d in drawn]
        say(f"first calls: {args.rate:g}/s for {args.duration:g} s, each to a device not called since it connected")
        result["calls_first"] = await load.open_loop(args.rate, args.duration, "first calls")
        # Calls refused by the API (429) never reached their device: one raw echo through each drawn device
        # makes sure every one of them has answered once before the next phase (no CPU wanted: `dict`).
        say("warming: one raw broker echo through each drawn device")
        await blocking(echo_phase, state, platform.ports["amqp"], drawn_ids, floor_open_loop, 2 * args.rate,
                       len(drawn) / (2 * args.rate), dict)
        await blocking(settle, platform)
        say(f"calls: {args.rate:g}/s for {args.duration:g} s over the same {len(drawn)} devices, called before")
        async def broker_work_during(phase: str) -> None:
            """Which broker processes work while `phase` runs (sampled inside it): calls against raw echoes."""
            if args.broker_work > 0 and args.broker_work_phases:
                await asyncio.sleep(min(2.0, args.duration / 4))
                result[f"broker_work_{phase}"] = await blocking(broker_work, state, platform.ports["epmd"],
                                                                min(args.broker_work, args.duration / 2))
                say(f"  broker's work during the {phase} by process kind: {result[f'broker_work_{phase}']}")

        calls = asyncio.ensure_future(load.open_loop(args.rate, args.duration, f"{args.rate:g}/s"))
        await broker_work_during("calls")
        result["calls"] = await calls
        result["load"]["calls"] = loadavg()
        await blocking(settle, platform)
        say(f"floor: raw broker echo at {args.rate:g}/s over the same devices")
        echoes = asyncio.ensure_future(blocking(echo_phase, state, platform.ports["amqp"], drawn_ids,
                                                floor_open_loop, args.rate, args.duration, platform.cpu))
        await broker_work_during("floor")
        result["floor"] = {"open_loop": [await echoes]}
        await blocking(settle, platform)

        say(f"presence: stopping the simulator of {args.presence_devices} devices")
        since = time.monotonic()
        await blocking(group.stop, "presence")
        result["presence"]["simulator_stopped_s"] = round(time.monotonic() - since, 3)
        result["presence"]["offline"] = await blocking(watch.until, ids["presence"], "offline", since, 60.0)
        say(f"  offline in the read model: {result['presence']['offline']}")
        since = time.monotonic()
        group.launch("presence", extra=("--max-connecting", str(args.max_connecting)) if args.max_connecting else ())
        result["presence"]["online_again"] = await blocking(watch.until, ids["presence"], "online", since, 120.0)
        say(f"  online again in the read model: {result['presence']['online_again']}")

        say(f"revocation: unregistering {probe.creds.device_id} while it is connected")
        name = next(probe_folder.glob("*.json")).stem
        since = time.monotonic()
        status, body = await http.call("DELETE", f"/v1/devices/{name}")
        answered = time.monotonic() - since
        refusal = await blocking(probe.try_login, 10.0)
        refused = time.monotonic() - since
        closed_at = await blocking(probe.wait_closed, 60.0)
        result["revocation"] = {"status": status, "rest_answer_s": round(answered, 3),
                                "connection_closed_s": round(closed_at - since, 3) if closed_at else None,
                                "login_after_answer": refusal,
                                "login_refused_s": round(refused, 3) if "ACCEPTED" not in refusal else None}
        say(f"  {result['revocation']}")
    finally:
        probe.close()
        group.stop()
        watch.close()
        http.close()


def main(argv=None) -> int:
    args = parse_args(argv)
    check_arguments(args.name, args.apis)
    if args.devices < args.presence_devices + args.simulators + 1:
        raise SystemExit("--devices: too few for the presence group, the probe and the simulators")
    state = Path(tempfile.mkdtemp(prefix="iotcloud-fleet-"))
    result = {"name": args.name, "kind": "connected_fleet",
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "config": {k: v for k, v in vars(args).items() if k not in ("name", "keep_state", "postgres")},
              "load": {"before": loadavg()}, "setup": {}, "memory": {}, "idle_cpu": {}, "presence": {}}
    pg = platform = None
    started = time.monotonic()
    interrupt_on_sigterm()
    try:
        host, port, user = (args.postgres.rsplit(":", 1)[0], int(args.postgres.rsplit(":", 1)[1]), "postgres") \
            if args.postgres else find_postgres()
        pg = Postgres(host, port, user)
        pg.create()
        result["machine"] = machine(pg.version)
        result["machine"]["python_loop_s"] = {"start": python_loop_s()}
        platform = Platform(state, pg.env(), args.api_workers, args.api_threads, args.log_level)
        if args.waiting_per_user:
            platform.env["IOTCLOUD_API_WAITING_CALLS_PER_USER"] = str(args.waiting_per_user)
        say(f"starting iotcloud run in {state}; load average {result['load']['before']}")
        result["setup"]["platform_start_s"] = round(platform.start(), 1)
        result["memory"]["idle"] = platform.memory()
        asyncio.run(run(args, state, result, platform))
        result["targets"] = targets(result)
        result["machine"]["python_loop_s"]["end"] = python_loop_s()
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        result["interrupted"] = True
    finally:
        result["load"]["after"] = loadavg()
        stop_platform(platform)
        if pg is not None:
            pg.drop()
        result["wall_clock_s"] = round(time.monotonic() - started, 1)
    return finish(args.name, result, state, args.keep_state, update_docs)


if __name__ == "__main__":
    sys.exit(main())
