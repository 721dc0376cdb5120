#!/usr/bin/env python3
"""History rebuild benchmark: how fast `iotcloud projections rebuild history` replays a large store.

Writes --events events (default 1,000,000) straight through the applications in big batches on
the SQLite event store of a temporary state directory: devices registered and going on and off
line (Device.*), and device calls Requested -> Sent -> Succeeded, every 20th TimedOut instead
(DeviceCommand.*). Then replays them three ways:

  null sink  the projector's own batches (Projector.step, as `iotcloud projections rebuild` runs
             them: read, decode, apply, merge, build the bulk writes and checkpoints) into a read
             store that keeps nothing: what iotcloud itself costs;
  rebuild    the projector's batches into a private nx-27017 through pymongo, as `iotcloud projections
             rebuild` runs them (--rebuild-events stops it early: nx-27017 takes ~30 min for 1M);
  profile    cProfile over the first --profile-events of a rebuild (where the time goes).

Prints the figures and writes bench/results/history/<name>.json.

    .venv/bin/python bench/history_rebuild.py --name rebuild-1m
    .venv/bin/python bench/history_rebuild.py --name rebuild-1m-null --events 1000000 --skip-rebuild
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from commands.context import acting_as  # noqa: E402
from commands.domain.device_commands import DeviceCommand  # noqa: E402
from commands.domain.devices import Device  # noqa: E402
from iotcloud.bootstrap import build_device_control, build_event_applications, connect_read_store  # noqa: E402
from iotcloud.config import Settings  # noqa: E402
from iotcloud.embedded_mongo import start_embedded_mongo  # noqa: E402
from projections.history import HistoryProjection  # noqa: E402
from projections.runner import Projector  # noqa: E402
from tests.ports import free_port  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "history"
PRESENCE_CHANGES = 20
CERTIFICATE = {"serial": "1", "fingerprint_sha256": "00", "not_before": "2026-01-01T00:00:00Z",
               "not_after": "2028-01-01T00:00:00Z", "pem": ""}


def generate(fleet, control, events: int, devices: int, batch: int) -> dict:
    """Saves `events` events; returns counts and seconds."""
    started = time.perf_counter()
    now = time.time() - 86400
    written = 0
    with acting_as("user:bench", "bench"):
        owners = [f"owner{i % 50}" for i in range(devices)]
        aggregates = []
        for i in range(devices):
            device = Device(device_id=f"{i:040x}", owner=owners[i], name=f"device-{i}", certificate=CERTIFICATE)
            for change in range(PRESENCE_CHANGES):
                if change % 2 == 0:
                    device.connect(now + change, "mqtt")
                else:
                    device.disconnect(now + change)
            aggregates.append(device)
            written += 1 + PRESENCE_CHANGES
            if len(aggregates) >= 100:
                fleet.save(*aggregates)
                aggregates = []
        if aggregates:
            fleet.save(*aggregates)
        calls = 0
        while written < events:
            commands = []
            for _ in range(min(batch, (events - written + 2) // 3)):
                i = calls % devices
                command = DeviceCommand(device_id=f"{i:040x}", owner=owners[i], device_name=f"device-{i}",
                                        api="get_gpio", params={"number": calls % 4}, timeout=5.0,
                                        expires_at=now + 60, correlate=False)
                command.mark_sent(now + calls * 0.001, "bench")
                if calls % 20 == 19:
                    command.time_out()
                else:
                    command.record_answer(calls % 2, {"number": calls % 4, "value": calls % 2})
                commands.append(command)
                calls += 1
                written += 3
            control.save(*commands)
    return {"events": written, "devices": devices, "calls": calls, "seconds": round(time.perf_counter() - started, 2)}


class NullCollection:
    """Where the null-sink replay writes: nowhere (the projection's lookups find nothing)."""

    name = "null"

    def bulk_write(self, requests, ordered=True):
        return None

    def update_one(self, *args, **kwargs):
        return None

    def find_one(self, *args, **kwargs):
        return None

    def create_index(self, *args, **kwargs):
        return None


class NullDatabase:
    """A read store that keeps nothing: every collection is a NullCollection (checkpoints included)."""

    def __getitem__(self, name: str) -> NullCollection:
        return NullCollection()


def null_sink(sources: dict, page: int) -> dict:
    """The projector's own batches (projections.runner.Projector.step, as a rebuild runs them) with
    every read-store request discarded: read, decode, apply, merge, build the bulk writes."""
    projector = Projector(HistoryProjection(), sources, NullDatabase(), page)
    started, cpu, events = time.perf_counter(), time.process_time(), 0
    while True:
        applied = projector.step(generation=1)
        if not applied:
            break
        events += applied
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"events": events, "seconds": round(seconds, 2), "events_per_s": round(events / seconds),
            "cpu_s": round(cpu, 2), "events_per_cpu_s": round(events / cpu), "page": page}


def cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def real_rebuild(sources: dict, db, page: int, limit: int | None, nx_pid: int) -> dict:
    """As `projections.runner.rebuild` (the CLI's), stopped after `limit` events if given."""
    projector = Projector(HistoryProjection(), sources, db, page)
    generation, done, last = 500, 0, 0.0
    total = projector.head() if limit is None else min(limit, projector.head())
    started, cpu, nx_cpu = time.perf_counter(), time.process_time(), cpu_of(nx_pid)
    while done < total:
        applied = projector.step(generation)
        if not applied:
            break
        done += applied
        elapsed = time.perf_counter() - started
        if elapsed - last >= 10:
            last = elapsed
            print(f"  {done}/{total} events, {elapsed:.0f} s, {done / elapsed:.0f} events/s", flush=True)
    seconds, cpu, nx_cpu = time.perf_counter() - started, time.process_time() - cpu, cpu_of(nx_pid) - nx_cpu
    documents = db[f"history_g{generation}"].count_documents({})
    return {"events": done, "documents": documents, "seconds": round(seconds, 2),
            "events_per_s": round(done / seconds), "projector_cpu_s": round(cpu, 2),
            "nx_27017_cpu_s": round(nx_cpu, 2)}


def profile_rebuild(sources: dict, db, page: int, limit: int) -> list[str]:
    projector = Projector(HistoryProjection(), sources, db, page)
    profiler = cProfile.Profile()
    done, generation = 0, 900
    profiler.enable()
    while done < limit:
        applied = projector.step(generation)
        if not applied:
            break
        done += applied
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    return [line for line in out.getvalue().splitlines() if line.strip()][:30]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--page", type=int, default=5000, help="events per projector batch (IOTCLOUD_PROJECTION_BATCH)")
    p.add_argument("--profile-events", type=int, default=100_000)
    p.add_argument("--keep", action="store_true", help="keep the temporary state directory")
    p.add_argument("--skip-rebuild", action="store_true", help="the null sink only")
    p.add_argument("--rebuild-events", type=int, default=None,
                   help="stop the rebuild into nx-27017 after this many events (default: all)")
    args = p.parse_args(argv)
    state = Path(tempfile.mkdtemp(prefix="iotcloud-history-bench-"))
    port = free_port()
    nx = start_embedded_mongo(state, port)
    try:
        settings = Settings(state_dir=state, persistence_module="eventsourcing.sqlite",
                            mongodb_uri=f"mongodb://127.0.0.1:{port}/", mongodb_database="bench")
        _, fleet = build_event_applications(settings)
        control = build_device_control(settings)
        result = {"name": args.name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "load_before": os.getloadavg()}
        print(f"writing {args.events} events through the applications (SQLite, {state})", flush=True)
        result["generate"] = generate(fleet, control, args.events, args.devices, 2000)
        print(f"  {result['generate']}", flush=True)
        sources = {"DeviceFleet": fleet, "DeviceControl": control}
        print("null sink: read, decode, apply, merge; writes discarded", flush=True)
        result["null_sink"] = null_sink(sources, args.page)
        print(f"  {result['null_sink']}", flush=True)
        mongo, db = connect_read_store(settings)
        if args.skip_rebuild:
            args.profile_events = 0
        else:
            print("rebuild into nx-27017", flush=True)
            result["load_during"] = os.getloadavg()
            result["rebuild"] = real_rebuild(sources, db, args.page, args.rebuild_events, nx.pid)
            print(f"  {result['rebuild']}", flush=True)
        if args.profile_events:
            print(f"profile of a rebuild's first {args.profile_events} events", flush=True)
            result["profile"] = profile_rebuild(sources, db, args.page, args.profile_events)
            print("\n".join(result["profile"]), flush=True)
        result["load_after"] = os.getloadavg()
        mongo.close()
        fleet.close()
        control.close()
    finally:
        nx.terminate()
        nx.wait(20)
        if not args.keep:
            shutil.rmtree(state, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    print(f"results: {RESULTS / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
