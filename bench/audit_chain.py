#!/usr/bin/env python3
"""Audit benchmark: the event chain's cost and what auditors wait for, on SQLite and PostgreSQL.

Phases, per event store:

  write     the cost of the chain on the write path: device calls recorded as the API records them
            (Requested, born sent, in one commit; the outcome through the group commit), 16 threads, with and
            without the chained recorder (events/s); and one writer committing one event at a time
            (commit latency p50/p99), with and without;
  generate  N events written through the chained recorder in batches of 5,000 (the real insert and
            link code; the states are copies of a real call's three events under fresh aggregate ids);
  verify    `verify` over those N events (events/s; goal >= 100,000/s);
  state     one device with 10,000 events (presence flapping, snapshots every 100 as DeviceFleet
            takes them): the device at random revisions (p50/p99; goal well under 100 ms), at a random
            moment (binary search + fold), and folding every event without snapshots for contrast.

PostgreSQL is a throw-away database on the machine's cluster (IOTCLOUD_TEST_PG_* or deploy/test-postgres.sh).
Results: bench/results/audit/<name>.json; the machine's load average is recorded beside every figure.

    .venv/bin/python bench/audit_chain.py --name audit-1 [--events 1000000] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roundtrip import RESULTS, say  # noqa: E402
from roundtrip.procstats import percentiles  # noqa: E402
from roundtrip.services import Postgres, find_postgres  # noqa: E402

from eventsourcing.persistence import StoredEvent  # noqa: E402

from commands.audit.time_travel import device_at_revision, revision_at  # noqa: E402
from commands.chain.verify import verify  # noqa: E402
from commands.device_control import DeviceControl  # noqa: E402
from commands.domain.device_commands import DeviceCommand  # noqa: E402
from commands.domain.devices import Device  # noqa: E402
from commands.fleet import DeviceFleet  # noqa: E402
from commands.pki import CertificateAuthority  # noqa: E402
from iotcloud.config import Settings  # noqa: E402

DEVICE = {"device_id": "b" * 40, "owner": "bench", "name": "bench"}
GENERATE_BATCH = 5_000


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def settings_for(store: str, state_dir: Path, pg: Postgres | None) -> Settings:
    postgres = {} if pg is None else {k: v for k, v in pg.env().items() if k.startswith("POSTGRES_")}
    return Settings(state_dir=state_dir, persistence_module=f"eventsourcing.{store}", postgres=postgres)


def fresh_env(store: str, root: Path, pg: Postgres | None, name: str, chained: bool) -> dict:
    """An event-store environment of its own (own SQLite file, or own PostgreSQL schema)."""
    if pg is not None:
        schema = f"b_{uuid.uuid4().hex[:10]}"
        pg._run(f'CREATE SCHEMA "{schema}"', db=pg.dbname)
        pg_env = {**pg.env(), "POSTGRES_SCHEMA": schema}
        settings = Settings(state_dir=root, persistence_module="eventsourcing.postgres",
                            postgres={k: v for k, v in pg_env.items() if k.startswith("POSTGRES_")})
    else:
        settings = settings_for(store, root / uuid.uuid4().hex[:8], None)
    env = settings.event_store_env(name)
    if not chained:
        env.pop("APPLICATION_RECORDER_TOPIC")
    return env


def write_phase(store: str, root: Path, pg, threads: int, calls: int, sequential: int) -> dict:
    """Both recorders side by side, in alternating rounds, so load drifting over the run hits both alike."""
    apps = {"plain": DeviceControl(env=fresh_env(store, root, pg, "DeviceControl", False)),
            "chained": DeviceControl(env=fresh_env(store, root, pg, "DeviceControl", True))}
    rounds = 4
    figures = {key: {"events": 0, "seconds": 0.0, "cpu": 0.0, "latencies": []} for key in apps}
    for _ in range(rounds):
        for key, control in apps.items():
            def work(worker: int, control=control) -> None:
                for n in range(calls // threads // rounds):
                    command = control.dispatch(DEVICE, "get_gpio", {"number": worker}, None, None, by="bench")
                    command.record_answer(n, {"value": n})
                    control.record_later(command).result(60)

            head, started, cpu = control.recorder.max_notification_id() or 0, time.perf_counter(), time.process_time()
            workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            figures[key]["seconds"] += time.perf_counter() - started
            figures[key]["cpu"] += time.process_time() - cpu  # this process: all of SQLite, the client side of PostgreSQL
            figures[key]["events"] += (control.recorder.max_notification_id() or 0) - head
            for n in range(sequential // rounds):  # one writer, one event per commit: the chain's cost per transaction
                command = control.dispatch(DEVICE, "get_gpio", {"number": n % 256}, None, None, by="bench")
                command.record_answer(n, {"value": n})
                t = time.perf_counter()
                control.record(command)
                figures[key]["latencies"].append((time.perf_counter() - t) * 1000)
    result = {}
    for key, f in figures.items():
        result[key] = {"events": f["events"], "seconds": round(f["seconds"], 3),
                       "events_per_s": round(f["events"] / f["seconds"]),
                       "cpu_us_per_event": round(1e6 * f["cpu"] / f["events"], 1),
                       "single_event_commit": percentiles(f["latencies"])}
        say(f"{store} write {key}: {f['events']} events from {threads} threads in {f['seconds']:.2f} s = "
            f"{f['events'] / f['seconds']:,.0f} events/s ({1e6 * f['cpu'] / f['events']:.0f} us CPU per event here); "
            f"one event per commit p50 "
            f"{result[key]['single_event_commit']['p50_ms']} ms p99 {result[key]['single_event_commit']['p99_ms']} ms")
    assert verify(apps["chained"].recorder).intact
    for control in apps.values():
        control.close()
    result["load"] = load()
    result["chain_cost_pct"] = round(100 * (1 - result["chained"]["events_per_s"] / result["plain"]["events_per_s"]), 1)
    result["chain_cpu_pct"] = round(100 * (result["chained"]["cpu_us_per_event"] / result["plain"]["cpu_us_per_event"] - 1), 1)
    return result


def template_events() -> list[StoredEvent]:
    """A gateway-path call's three stored events (Requested, Sent, Succeeded), as the store holds them."""
    app = DeviceControl(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    command = DeviceCommand(device_id=DEVICE["device_id"], owner=DEVICE["owner"], device_name=DEVICE["name"],
                            api="get_gpio", params={"number": 3}, timeout=5.0, expires_at=time.time(), correlate=False)
    command.mark_sent(time.time(), "api:bench")
    command.record_answer(1, {"value": 1})
    stored = [app.mapper.to_stored_event(event) for event in command.collect_events()]
    app.close()
    return stored


def generate_phase(recorder, events: int) -> dict:
    templates = template_events()
    started, before = time.perf_counter(), load()
    written = 0
    while written < events:
        batch = []
        while len(batch) < min(GENERATE_BATCH, events - written):
            originator = uuid.uuid4()
            batch += [StoredEvent(originator, t.originator_version, t.topic, t.state) for t in templates]
        batch = batch[:min(GENERATE_BATCH, events - written)]
        recorder.insert_events(batch)
        written += len(batch)
        if written % 100_000 < GENERATE_BATCH:
            say(f"  generated {written:,}/{events:,} ({written / (time.perf_counter() - started):,.0f}/s)")
    elapsed = time.perf_counter() - started
    return {"events": written, "seconds": round(elapsed, 2), "events_per_s": round(written / elapsed),
            "state_bytes": [len(t.state) for t in templates], "load_before": before, "load_after": load()}


def verify_phase(recorder, runs: int) -> dict:
    figures = []
    for _ in range(runs):
        before, started, cpu = load(), time.perf_counter(), time.process_time()
        verdict = verify(recorder)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert verdict.intact, verdict.broken.describe()
        figures.append({"events": verdict.events, "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2),
                        "events_per_s": round(verdict.events / elapsed),
                        "events_per_cpu_s": round(verdict.events / cpu), "load_before": before, "load_after": load()})
        say(f"  verify: {verdict.events:,} events in {elapsed:.2f} s = {verdict.events / elapsed:,.0f} events/s; "
            f"{cpu:.2f} s of CPU in this process = {verdict.events / cpu:,.0f} events per CPU second "
            f"(load {before[0]} -> {load()[0]})")
    return {"runs": figures, "best_events_per_s": max(f["events_per_s"] for f in figures)}


def state_phase(store: str, root: Path, pg, device_events: int, samples: int) -> dict:
    env = fresh_env(store, root, pg, "DeviceFleet", True)
    ca = CertificateAuthority.load_or_create(root / "pki")
    fleet = DeviceFleet(env=env, ca=ca)
    device_id = fleet.register_device("bench", "flapper").device_id
    started = time.perf_counter()
    for n in range(device_events - 1):
        fleet.record_presence(device_id, n % 2 == 0, 1000.0 + n, "mqtt")
    say(f"  {device_events:,} device events recorded in {time.perf_counter() - started:.1f} s")
    fleet.close()
    fleet = DeviceFleet(env=env, ca=ca)  # a fresh process's view: empty aggregate cache
    rng = random.Random(8)
    before = load()
    by_revision, by_revision_cpu = [], []
    for _ in range(samples):
        revision = rng.randint(1, device_events)
        t, c = time.perf_counter(), time.thread_time()
        device = device_at_revision(fleet, device_id, revision)
        by_revision.append((time.perf_counter() - t) * 1000)
        by_revision_cpu.append((time.thread_time() - c) * 1000)
        assert device.version == revision
    stamps = [e.timestamp for e in fleet.events.get(Device.create_id(device_id))]
    by_moment = []
    for _ in range(max(20, samples // 5)):
        at = stamps[rng.randrange(len(stamps))]
        t = time.perf_counter()
        device_at_revision(fleet, device_id, revision_at(fleet, device_id, at))
        by_moment.append((time.perf_counter() - t) * 1000)
    full_fold = []
    for _ in range(3):
        t = time.perf_counter()
        device_at_revision(fleet, device_id, device_events, use_snapshots=False)
        full_fold.append((time.perf_counter() - t) * 1000)
    fleet.close()
    result = {"device_events": device_events, "by_revision": percentiles(by_revision),
              "by_revision_cpu": percentiles(by_revision_cpu),
              "by_moment": percentiles(by_moment), "without_snapshots": percentiles(full_fold),
              "load_before": before, "load_after": load()}
    say(f"  state --revision p50 {result['by_revision']['p50_ms']} ms p99 {result['by_revision']['p99_ms']} ms "
        f"(CPU p50 {result['by_revision_cpu']['p50_ms']} ms p99 {result['by_revision_cpu']['p99_ms']} ms); "
        f"--at p50 {result['by_moment']['p50_ms']} ms p99 {result['by_moment']['p99_ms']} ms; "
        f"no snapshots {result['without_snapshots']['p50_ms']} ms (load {load()[0]})")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--device-events", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--verify-runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--calls", type=int, default=1600)
    parser.add_argument("--sequential", type=int, default=400)
    parser.add_argument("--phases", default="write,verify,state", help="write, verify (generate + verify), state")
    args = parser.parse_args()
    out = {"name": args.name, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "cpus": os.cpu_count(), "load_at_start": load(), "stores": {}}
    root = Path(tempfile.mkdtemp(prefix="iotcloud-audit-bench-"))
    pg = None
    try:
        for store in args.stores.split(","):
            say(f"== {store}")
            if store == "postgres":
                pg = Postgres(*find_postgres())
                pg.create()
            figures = out["stores"][store] = {}
            phases = args.phases.split(",")
            if "write" in phases:
                figures["write"] = write_phase(store, root, pg, args.threads, args.calls, args.sequential)
            if "verify" in phases:
                control = DeviceControl(env=fresh_env(store, root, pg, "DeviceControl", True))
                say(f"  generating {args.events:,} events")
                figures["generate"] = generate_phase(control.recorder, args.events)
                figures["verify"] = verify_phase(control.recorder, args.verify_runs)
                control.close()
            if "state" in phases:
                figures["state"] = state_phase(store, root, pg, args.device_events, args.samples)
            if pg is not None:
                pg.drop()
                pg = None
    finally:
        if pg is not None:
            pg.drop()
        shutil.rmtree(root, ignore_errors=True)
    out["load_at_end"] = load()
    target = RESULTS / "audit" / f"{args.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")
    say(f"results: {target.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
