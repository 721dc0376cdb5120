#!/usr/bin/env python3
"""History lag benchmark: how long a device call's events take to show in the history read model
(event recorded -> history document written) while REST calls run at a fixed rate.

Uses bench/command_roundtrip.py's machinery (roundtrip/): starts `iotcloud run` in a temporary state
directory (PostgreSQL or SQLite event store), signs users up, registers and connects --devices
simulated devices, warms up, then calls at --rate calls/s for --duration s (open loop). The
projector keeps every applied event's lag for the last 30 s and stores p50/p99/max with its
checkpoint (projections/lag.py); read right after the run, they cover the events of the run.
Writes bench/results/history/<name>.json.

    .venv/bin/python bench/history_lag.py --name lag-100 --rate 100 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roundtrip import HOST, say  # noqa: E402
from roundtrip.httpclient import Http  # noqa: E402
from roundtrip.load import Load  # noqa: E402
from roundtrip.runs import stop_platform  # noqa: E402
from roundtrip.services import Platform, Postgres, find_postgres  # noqa: E402
from roundtrip.users import small_fleet  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "history"
VENV_CLI = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "iotcloud"


def lag_rows(platform: Platform) -> list[dict]:
    done = subprocess.run([str(VENV_CLI), "projections", "status", "--json"], env=platform.env, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"iotcloud projections status failed ({done.returncode}): {done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines()]


async def measure(args, state: Path, platform: Platform, result: dict) -> None:
    http = Http(platform.api_port)
    owners, fleet = await small_fleet(http, platform, state, args.devices, args.users)
    load = Load(http, owners, args.apis.split(","), 5.0, False, platform)
    try:
        say(f"warm-up: 50/s for {args.warmup:g} s, then {args.window_wait:g} s so its events leave the lag window")
        await load.open_loop(50, args.warmup, "warm-up")
        await asyncio.sleep(args.window_wait)
        say(f"open loop at {args.rate:g} calls/s for {args.duration:g} s")
        result["load_before"] = os.getloadavg()
        result["calls"] = await load.open_loop(args.rate, args.duration, f"{args.rate:g}/s")
        result["load_after"] = os.getloadavg()
        await asyncio.sleep(1.5)  # the projector stores its window once a second
        result["projection_lag"] = [row for row in await asyncio.to_thread(lag_rows, platform)
                                    if row["projection"] in ("history", "device_list")]
    finally:
        fleet.stop()
        http.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    p.add_argument("--rate", type=float, default=100)
    p.add_argument("--duration", type=float, default=30, help="seconds (the lag window is 30 s)")
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--window-wait", type=float, default=31)
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--apis", default="get_gpio,set_gpio,get_status,get_rtc")
    args = p.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="iotcloud-history-lag-"))
    result = {"name": args.name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "config": vars(args)}
    pg = platform = None
    try:
        if args.store == "postgres":
            pg = Postgres(*find_postgres())
            pg.create()
            store_env = pg.env()
        else:
            store_env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite"}
        platform = Platform(state, store_env, 1, 32, "WARNING")
        say(f"starting iotcloud run in {state} (API on {HOST}:{platform.api_port})")
        platform.start()
        asyncio.run(measure(args, state, platform, result))
    finally:
        stop_platform(platform)
        if pg is not None:
            pg.drop()
        shutil.rmtree(state, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1, default=str))
    history = [r for r in result.get("projection_lag", []) if r["projection"] == "history"]
    for row in history:
        say(f"history <- {row['source']}: {row['lag_events']} events, lag p50 {row['lag_p50_ms']} ms, "
            f"p99 {row['lag_p99_ms']} ms, max {row['lag_max_ms']} ms")
    calls = result.get("calls", {})
    say(f"calls: {json.dumps({k: calls.get(k) for k in ('answered', 'errors', 'latency_ms') if k in calls})[:400]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
