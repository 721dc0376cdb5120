#!/usr/bin/env python3
"""Device-command round-trip benchmark: REST call -> event store -> gateway -> broker -> simulated device
-> gateway -> results fanout -> REST answer, measured end to end on one machine.

It starts its own platform (`iotcloud run`) in a temporary state directory on free 127.0.0.1 ports,
with the PostgreSQL event store (a throw-away database on the machine's PostgreSQL) or SQLite, signs a
user up, registers devices, connects them with `simulators.fleet`, then measures:

  1. open-loop REST device calls at fixed rates (coordinated-omission-correct: latency is measured
     from each request's *scheduled* send time, so a stalled server is charged for the requests it
     delayed), at most one call in flight per device and api unless --correlation-ids;
  2. a saturated closed loop with K concurrent clients (throughput);
  3. the floor: the raw broker echo round trip (pika AMQPS publish to `<id>.<api>` on amq.topic,
     the simulated device answers on `server/<id>/<api>`) at the same rates, no platform code in
     the path;
  4. peak RSS (VmHWM) of every platform process and of the broker, also with --memory-devices
     (default 1,000) simulated devices connected;
  5. optionally (--profile) py-spy profiles of the gateway and an API worker under saturation.

Results go to bench/results/<name>.json and the table in docs/benchmarks.md is regenerated from
every bench/results/*.json. Everything listens on 127.0.0.1 only; the script stops everything it
started (SIGTERM to the supervisor, which stops the broker) and drops its database.

    .venv/bin/python bench/command_roundtrip.py --name my-run
    .venv/bin/python bench/command_roundtrip.py --name quick --rates 50,300 --duration 5 --memory-devices 0
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from roundtrip import APIS, HOST, RESULTS, ROOT, say
from roundtrip.floor import broker_floor
from roundtrip.httpclient import Http
from roundtrip.load import closed_loop, connect_fleet, open_loop, register, sign_up
from roundtrip.procstats import cpu_seconds, machine, mib, sh, status_kib
from roundtrip.profiling import py_spy
from roundtrip.report import targets, update_docs
from roundtrip.runs import check_arguments, finish, interrupt_on_sigterm, stop_platform
from roundtrip.services import Fleet, Platform, Postgres, find_postgres


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Results: bench/results/<name>.json; table: docs/benchmarks.md")
    p.add_argument("--name", required=True, help="result name (bench/results/<name>.json)")
    p.add_argument("--store", choices=["postgres", "sqlite"], default="postgres", help="event store (default %(default)s)")
    p.add_argument("--devices", type=int, default=20, help="devices for the latency runs (default %(default)s)")
    p.add_argument("--apis", default="get_gpio,set_gpio,get_status,get_rtc",
                   help=f"device apis to spread calls over (from {','.join(APIS)})")
    p.add_argument("--correlation-ids", action="store_true",
                   help="register devices with correlation_ids (overlapping calls per device/api allowed); "
                        "default: at most one call in flight per device and api")
    p.add_argument("--rates", default="50,300,1000", help="open-loop rates, commands/s (default %(default)s)")
    p.add_argument("--duration", type=float, default=15, help="seconds per open-loop rate (default %(default)s)")
    p.add_argument("--warmup", type=float, default=5, help="warm-up seconds at 50/s before measuring (default %(default)s)")
    p.add_argument("--clients", type=int, default=64, help="concurrent clients of the saturated run (default %(default)s)")
    p.add_argument("--saturate-duration", type=float, default=20, help="seconds of the saturated run (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5, help="device timeout per command, s (default %(default)s)")
    p.add_argument("--api-workers", type=int, default=1, help="IOTCLOUD_API_WORKERS (default %(default)s)")
    p.add_argument("--api-threads", type=int, default=32, help="IOTCLOUD_API_THREADS (default %(default)s)")
    p.add_argument("--log-level", default="INFO", help="IOTCLOUD_LOG_LEVEL of the platform (default %(default)s)")
    p.add_argument("--memory-devices", type=int, default=1000,
                   help="devices connected for the memory measurement; 0 skips it (default %(default)s)")
    p.add_argument("--no-floor", action="store_true", help="skip the raw broker echo floor")
    p.add_argument("--profile", action="store_true", help="py-spy the gateway and API worker during the saturated run")
    p.add_argument("--keep-state", action="store_true", help="keep the temporary state directory (logs, profiles)")
    return p.parse_args(argv)


async def settle(platform: Platform, limit: float = 60.0) -> None:
    """Waits until the gateway has worked off any backlog (under 10 % CPU over a second)."""
    pid = platform.pids.get("gateway")
    started = time.monotonic()
    while pid and time.monotonic() - started < limit:
        before = cpu_seconds(pid) or 0.0
        await asyncio.sleep(1.0)
        if (cpu_seconds(pid) or 0.0) - before < 0.10:
            break
    if time.monotonic() - started > 2:
        say(f"  waited {time.monotonic() - started:.0f} s for the gateway to go idle")


async def run(args, state: Path, result: dict, platform: Platform) -> None:
    apis = [a.strip() for a in args.apis.split(",") if a.strip()]
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    http = Http(platform.api_port)
    say("signing up, confirming and logging in")
    await sign_up(http, platform)
    names = [f"bench-{i:04d}" for i in range(max(args.devices, args.memory_devices))]
    lat_dir, all_dir = state / "creds-latency", state / "creds-all"
    say(f"registering {args.devices} devices (correlation_ids={args.correlation_ids})")
    t = await register(http, names[:args.devices], lat_dir, args.correlation_ids)
    result["setup"]["register_s"] = round(t, 2)
    say(f"  {args.devices} registered in {t:.1f} s")
    fleet = Fleet(lat_dir, state / "fleet.log")
    try:
        connected, online, waited = await connect_fleet(fleet, http, platform, args.devices, 120, 60)
        result["setup"]["fleet_connect_s"] = round(connected, 2)
        result["setup"]["online_after_s"] = round(waited, 2)
        device_ids = [json.loads(p.read_text())["device_id"] for p in sorted(lat_dir.glob("*.json"))]
        dev_names = names[:args.devices]

        if not args.no_floor:
            say("floor: raw AMQPS echo through the broker to the simulated devices (no platform code)")
            result["floor"] = await asyncio.get_running_loop().run_in_executor(
                None, broker_floor, state, platform.ports["amqp"], device_ids, rates, args.duration,
                args.clients, min(10.0, args.saturate_duration), platform.cpu)

        if args.warmup > 0:
            say(f"warm-up: 50/s for {args.warmup:g} s")
            result["warmup"] = await open_loop(http, dev_names, apis, 50, args.warmup, args.timeout,
                                               args.correlation_ids, platform, "warm-up")
        for rate in rates:
            say(f"open loop at {rate:g} commands/s for {args.duration:g} s")
            result["open_loop"].append(await open_loop(http, dev_names, apis, rate, args.duration, args.timeout,
                                                       args.correlation_ids, platform, f"{rate:g}/s"))
            await settle(platform)
        say(f"saturated closed loop: {args.clients} clients for {args.saturate_duration:g} s")
        during = None
        if args.profile:
            prof_dir = state / "profiles"
            prof_dir.mkdir(exist_ok=True)
            targets = {"gateway": platform.pids["gateway"], "projector": platform.pids["projector"],
                       "read store (nx-27017)": platform.pids["read store (nx-27017)"],
                       "broker auth": platform.pids["broker auth"],
                       "fleet simulator": platform.extra_pids["fleet simulator"]}
            for i, w in enumerate(platform.api_workers()):
                targets[f"api worker {i + 1}"] = w
            seconds = max(3, args.saturate_duration - 4)
            during = lambda: (time.sleep(2), py_spy(targets, seconds, prof_dir))[1]  # noqa: E731
        result["saturated"] = await closed_loop(http, dev_names, apis, args.clients, args.saturate_duration,
                                                args.timeout, args.correlation_ids, platform, "saturated", during)
        result["memory"]["after_load_20_devices"] = platform.memory()
    finally:
        fleet.stop()

    if args.memory_devices > 0:
        more = names[args.devices:args.memory_devices]
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
            connected, online, _ = await connect_fleet(big, http, platform, args.memory_devices, 600, 120)
            result["setup"]["fleet_all_connect_s"] = round(connected, 2)
            result["setup"]["all_online"] = online
            say("one get_status to every device at 100/s")
            all_names = names[:args.memory_devices]
            result["memory_devices_sweep"] = await open_loop(http, all_names, ["get_status"], 100,
                                                             args.memory_devices / 100, args.timeout, True,
                                                             platform, "sweep")
            result["memory"]["with_memory_devices"] = platform.memory()
            result["memory"]["fleet_simulator_rss_mib"] = mib(status_kib(big.pid, "VmRSS"))
            mem = result["memory"]["with_memory_devices"]
            say(f"  memory with {args.memory_devices} devices: platform (python) RSS "
                f"{mem['platform_python_total']['vmrss_mib']} MiB (HWM sum {mem['platform_python_total']['vmhwm_mib']}),"
                f" with broker {mem['platform_with_broker_total']['vmrss_mib']} MiB")
        finally:
            big.stop()
    http.close()



def main(argv=None) -> int:
    args = parse_args(argv)
    check_arguments(args.name, args.apis)
    state = Path(tempfile.mkdtemp(prefix="iotcloud-bench-"))
    result = {"name": args.name, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "config": {"store": args.store, "devices": args.devices, "apis": args.apis,
                         "correlation_ids": args.correlation_ids, "rates": args.rates, "duration_s": args.duration,
                         "warmup_s": args.warmup, "clients": args.clients,
                         "saturate_duration_s": args.saturate_duration, "timeout_s": args.timeout,
                         "api_workers": args.api_workers, "api_threads": args.api_threads,
                         "log_level": args.log_level, "memory_devices": args.memory_devices,
                         "client": "asyncio streams, HTTP/1.1 keep-alive, one process"},
              "setup": {}, "open_loop": [], "memory": {}}
    pg = None
    platform = None
    started = time.monotonic()
    interrupt_on_sigterm()
    try:
        if args.store == "postgres":
            host, port, user = find_postgres()
            pg = Postgres(host, port, user)
            pg.create()
            say(f"PostgreSQL {host}:{port}, throw-away database {pg.dbname}")
            store_env = pg.env()
        else:
            store_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
        result["machine"] = machine(pg.version if pg else sh("psql", "--version"))
        say(f"machine: {result['machine']['cores']} cores, {result['machine']['ram_gib']} GiB, "
            f"{result['machine']['cpu_model']}")
        platform = Platform(state, store_env, args.api_workers, args.api_threads, args.log_level)
        say(f"starting iotcloud run in {state} (API on {HOST}:{platform.api_port})")
        result["setup"]["platform_start_s"] = round(platform.start(), 2)
        result["config"]["ports"] = platform.ports
        say(f"  platform up in {result['setup']['platform_start_s']} s: "
            + ", ".join(f"{k} {v}" for k, v in platform.processes().items()))
        result["memory"]["idle"] = platform.memory()
        asyncio.run(run(args, state, result, platform))
        result["targets"] = targets(result)
    except KeyboardInterrupt:
        say("interrupted; stopping everything")
        result["interrupted"] = True
    finally:
        if platform is not None:
            try:
                result["memory"]["at_end"] = platform.memory()
            except Exception:  # noqa: BLE001
                pass
        stop_platform(platform)
        if pg is not None:
            pg.drop()
        result["wall_clock_s"] = round(time.monotonic() - started, 1)
        if result.get("saturated", {}).get("profile"):
            for prof in result["saturated"]["profile"].values():
                src = Path(prof.get("file", ""))
                if src.exists():
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    dst = RESULTS / f"{args.name}.{src.name}"
                    shutil.copy(src, dst)
                    prof["file"] = str(dst.relative_to(ROOT))
    return finish(args.name, result, state, args.keep_state, update_docs)


if __name__ == "__main__":
    sys.exit(main())
