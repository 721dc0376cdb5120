#!/usr/bin/env python3
"""Device-command round-trip benchmark: REST call -> event store -> gateway -> broker -> simulated device
-> gateway -> results fanout -> REST answer, measured end to end on one machine.

It starts its own platform (`iotcloud run`) in a temporary state directory on free 127.0.0.1 ports,
with the PostgreSQL event store (a throw-away database on the machine's PostgreSQL) or SQLite, signs
--users users up, registers devices (shared out among them), connects them with `simulators.fleet`,
then measures:

  1. sequential REST calls: one client, --sequential calls back to back;
  2. open-loop REST device calls at fixed rates (coordinated-omission-correct: latency is measured
     from each request's *scheduled* send time), round-robin over the users, at most one call in
     flight per device and api unless --correlation-ids;
  3. a saturated closed loop with as many clients as the API's waiting-call bounds admit (throughput);
  4. right before each of those, its floor: the raw broker echo round trip (pika AMQPS publish to
     `<id>.get_status` on amq.topic, the simulated device answers on `server/<id>/get_status`), no
     platform code in the path, sequentially, at the rate, or with as many echoes outstanding as the
     saturated run has clients;
  5. CPU per answered call of every process in every phase (platform, broker and PostgreSQL backends
     counted; the bench client and fleet simulator not), with the idle CPU measured before each phase;
  6. peak RSS (VmHWM) of every platform process and of the broker, also with --memory-devices
     simulated devices connected;
  7. optionally (--profile) a further saturated run with py-spy on the gateway, API worker(s),
     projector and read store; collapsed stacks go next to the result.

Results go to bench/results/<name>.json and the tables in docs/benchmarks.md are regenerated from
every bench/results/*.json. Everything listens on 127.0.0.1 only; the script stops everything it
started (SIGTERM to the supervisor, which stops the broker) and drops its database.

    .venv/bin/python bench/command_roundtrip.py --name my-run
    .venv/bin/python bench/command_roundtrip.py --name quick --rates 50,300 --duration 10 \
        --saturate-duration 15 --memory-devices 0
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

from roundtrip import APIS, HOST, RESULTS, ROOT, say
from roundtrip.phases import run
from roundtrip.procstats import machine, python_loop_s, sh, wait_quiet
from roundtrip.report import targets, update_docs
from roundtrip.runs import check_arguments, finish, interrupt_on_sigterm, stop_platform
from roundtrip.services import Platform, Postgres, find_postgres


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
    p.add_argument("--users", type=int, default=8,
                   help="users the devices are shared out among, calls round-robin (default %(default)s; raised "
                        "when the saturated clients need more)")
    p.add_argument("--sequential", type=int, default=2000,
                   help="calls of the sequential phase, one client back to back; 0 skips it (default %(default)s)")
    p.add_argument("--clients", type=int, default=None,
                   help="concurrent clients of the saturated run (default: as many calls as the API lets wait "
                        "in all, from IOTCLOUD_API_THREADS and IOTCLOUD_API_WAITING_CALLS*)")
    p.add_argument("--floor-window", type=int, default=None,
                   help="echoes outstanding in the saturated floor (default: the saturated run's clients)")
    p.add_argument("--idle-seconds", type=float, default=3,
                   help="seconds of idle CPU measured before each phase; 0 skips it (default %(default)s)")
    p.add_argument("--saturate-duration", type=float, default=20, help="seconds of the saturated run (default %(default)s)")
    p.add_argument("--timeout", type=float, default=5, help="device timeout per command, s (default %(default)s)")
    p.add_argument("--api-workers", type=int, default=1, help="IOTCLOUD_API_WORKERS (default %(default)s)")
    p.add_argument("--api-threads", type=int, default=32, help="IOTCLOUD_API_THREADS (default %(default)s)")
    p.add_argument("--log-level", default="INFO", help="IOTCLOUD_LOG_LEVEL of the platform (default %(default)s)")
    p.add_argument("--memory-devices", type=int, default=1000,
                   help="devices connected for the memory measurement; 0 skips it (default %(default)s)")
    p.add_argument("--no-floor", action="store_true", help="skip the raw broker echo floor")
    p.add_argument("--profile", action="store_true",
                   help="after the saturated run, a further one with py-spy on the gateway, API worker(s), "
                        "projector and read store (collapsed stacks: bench/results/<name>.<process>.collapsed.txt)")
    p.add_argument("--profile-sequential", action="store_true",
                   help="a further sequential run with py-spy sampling every thread's wall clock (--idle --threads, "
                        "500 Hz): where a sequential call's time goes (bench/results/<name>.seq.<process>.collapsed.txt)")
    p.add_argument("--profile-gil", action="store_true",
                   help="with --profile: sample only the thread holding the GIL (py-spy --gil), the Python CPU")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples per second (default %(default)s)")
    p.add_argument("--profile-duration", type=float, default=15, help="seconds of the profiled run (default %(default)s)")
    p.add_argument("--wait-quiet", type=float, default=0,
                   help="wait up to this many seconds for the shared machine to go quiet before starting, and up "
                        "to 5 minutes before each phase for other sessions to (default: no)")
    p.add_argument("--quiet-pct", type=float, default=40,
                   help="quiet: the whole machine (before the run) or other sessions (before a phase) under this "
                        "%% of all its cores (default %(default)s)")
    p.add_argument("--keep-state", action="store_true", help="keep the temporary state directory (logs, profiles)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_arguments(args.name, args.apis)
    state = Path(tempfile.mkdtemp(prefix="iotcloud-bench-"))
    result = {"name": args.name, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "config": {"store": args.store, "devices": args.devices, "apis": args.apis,
                         "correlation_ids": args.correlation_ids, "rates": args.rates, "duration_s": args.duration,
                         "warmup_s": args.warmup, "sequential": args.sequential, "idle_s": args.idle_seconds,
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
        if args.wait_quiet > 0:
            result["machine"]["waited_for_quiet_s"], result["machine"]["busy_pct_before"] = \
                wait_quiet(args.wait_quiet, args.quiet_pct)
        result["machine"]["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
        result["machine"]["python_loop_s"] = {"start": python_loop_s()}
        say(f"host speed: a 10 M-addition Python loop in {result['machine']['python_loop_s']['start']} s")
        platform = Platform(state, store_env, args.api_workers, args.api_threads, args.log_level)
        say(f"starting iotcloud run in {state} (API on {HOST}:{platform.api_port})")
        result["setup"]["platform_start_s"] = round(platform.start(), 2)
        result["config"]["ports"] = platform.ports
        say(f"  platform up in {result['setup']['platform_start_s']} s: "
            + ", ".join(f"{k} {v}" for k, v in platform.processes().items()))
        result["memory"]["idle"] = platform.memory()
        asyncio.run(run(args, state, result, platform))
        result["targets"] = targets(result)
        result["machine"]["python_loop_s"]["end"] = python_loop_s()
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
        for phase, prefix in (("saturated_profiled", ""), ("sequential_profiled", "seq.")):
            for prof in (result.get(phase) or {}).get("profile", {}).values():
                src = Path(prof["file"]) if prof.get("file") else None
                if src and src.is_file():
                    RESULTS.mkdir(parents=True, exist_ok=True)
                    dst = RESULTS / f"{args.name}.{prefix}{src.name}"
                    shutil.copy(src, dst)
                    prof["file"] = str(dst.relative_to(ROOT))
    return finish(args.name, result, state, args.keep_state, update_docs)


if __name__ == "__main__":
    sys.exit(main())
