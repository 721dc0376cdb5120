#!/usr/bin/env python3
"""Projector CPU micro-benchmark: the `iotcloud projector` process and its read store, nothing else.

A throw-away PostgreSQL database and a private nx-27017 are started; this script writes synthetic
device calls into DeviceControl (Requested, Sent, Succeeded as three transactions, or with
`--shape 2` Requested and Succeeded), exactly as the API and gateway would, while the real projector
process follows them. Phases:

  idle      no events at all: what the projector and the read store burn doing nothing;
  live R    R calls/s, each call's events a few ms apart (Sent +2 ms, outcome +8 ms);
  lag       10 calls/s, each Requested followed by a read-your-writes wait (ReadModelCatalogue.wait_for),
            among 50 calls/s of others: how long a wait=false caller waits for its command to be projected;
  catch-up  N calls written while the projector is stopped (SIGSTOP), then the time and CPU it takes
            to catch up (large batches: the saturated case).

CPU is read from /proc for the projector, nx-27017 and the projector's PostgreSQL backends
(PGAPPNAME=iotcloud-projector). Results: bench/results/projector/<name>.json.

    .venv/bin/python bench/projector_cpu.py --name before
"""

from __future__ import annotations

import argparse
import heapq
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roundtrip import HOST, RESULTS, ROOT, say  # noqa: E402
from roundtrip.procstats import cpu_seconds, percentiles  # noqa: E402
from roundtrip.services import Postgres, find_postgres  # noqa: E402
from tests.ports import free_ports  # noqa: E402

APP_NAME = "iotcloud-projector"
PROFILED_PROJECTOR = """
import cProfile, sys, time
from iotcloud import cli
out, sys.argv = sys.argv[1], ["iotcloud", "projector"]
profile = cProfile.Profile(time.thread_time)
profile.enable()
try:
    cli.main()
finally:
    profile.disable()
    profile.dump_stats(out)
"""
DEVICE = {"device_id": "bench-device", "owner": "bench", "name": "bench", "correlation_ids": True}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--rates", default="50,150", help="live phases, calls/s (default %(default)s)")
    p.add_argument("--duration", type=float, default=10, help="seconds per live phase (default %(default)s)")
    p.add_argument("--idle", type=float, default=10, help="seconds of the idle phase (default %(default)s)")
    p.add_argument("--lag-calls", type=int, default=100, help="calls in the lag phase (default %(default)s)")
    p.add_argument("--lag-background", type=float, default=50,
                   help="calls/s of other callers during the lag phase (default %(default)s)")
    p.add_argument("--catch-up", type=int, default=2000, help="calls in the catch-up phase (default %(default)s)")
    p.add_argument("--shape", type=int, choices=[2, 3], default=3, help="events per call (default %(default)s)")
    p.add_argument("--postgres", default="", metavar="HOST:PORT",
                   help="PostgreSQL to use, user postgres (default: as bench/command_roundtrip.py finds one)")
    p.add_argument("--profile", action="store_true",
                   help="profile the projector's main thread by CPU time (cProfile; kept in the state directory)")
    return p.parse_args(argv)


class Rig:
    """PostgreSQL database, nx-27017 and the projector process; CPU readings of the three."""

    def __init__(self, state: Path, profile: bool, postgres: str):
        import psycopg
        from iotcloud.config import Settings
        from iotcloud.embedded_mongo import nx_command, wait_for_port
        self.state, self.profile = state, profile
        host, port, user = (postgres.rsplit(":", 1)[0], int(postgres.rsplit(":", 1)[1]), "postgres") if postgres \
            else find_postgres()
        self.pg = Postgres(host, port, user)
        self.pg.create()
        self._monitor = psycopg.connect(host=host, port=port, user=user, dbname=self.pg.dbname, autocommit=True)
        mongo_port = free_ports(1)[0]
        nx = nx_command(state / "nx", mongo_port, state / "nx.log", state / "nx.pid")
        (state / "nx").mkdir()
        self.nx = subprocess.Popen(nx, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(mongo_port, 30, self.nx)
        self.settings = Settings(state_dir=state, mongodb_uri=f"mongodb://{HOST}:{mongo_port}/",
                                 persistence_module="eventsourcing.postgres", postgres=self.pg.env())
        self.env = {**os.environ, **self.pg.env(), "IOTCLOUD_STATE_DIR": str(state),
                    "IOTCLOUD_MONGODB_URI": self.settings.mongodb_uri, "IOTCLOUD_LOG_LEVEL": "WARNING",
                    "PGAPPNAME": APP_NAME}
        self.projector: subprocess.Popen | None = None

    def start_projector(self) -> None:
        cli = [sys.executable, "-m", "iotcloud.cli", "projector"]
        if self.profile:
            cli = [sys.executable, "-c", PROFILED_PROJECTOR, str(self.state / "projector.prof")]
        self.projector = subprocess.Popen(cli, env=self.env, cwd=ROOT, start_new_session=True)

    def backend_pids(self) -> list[int]:
        return [row[0] for row in self._monitor.execute(
            "select pid from pg_stat_activity where datname = %s and application_name = %s",
            (self.pg.dbname, APP_NAME)).fetchall()]

    def cpu(self) -> dict[str, float]:
        return {"projector": cpu_seconds(self.projector.pid) or 0.0, "nx-27017": cpu_seconds(self.nx.pid) or 0.0,
                "projector pg backends": sum(cpu_seconds(pid) or 0.0 for pid in self.backend_pids())}

    def stop(self) -> None:
        for process in (self.projector, self.nx):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._monitor.close()
        self.pg.drop()


class Writer:
    """Writes device calls the way the API (Requested, group commit) and the gateway (the rest) do."""

    def __init__(self, settings, shape: int):
        from iotcloud.bootstrap import build_device_control, build_event_applications
        self.apps = [*build_event_applications(settings), build_device_control(settings)]
        self.control = self.apps[-1]
        self.shape = shape

    def request(self) -> tuple[str, int]:
        from commands.context import acting_as
        with acting_as("user:bench"):
            requested = self.control.request(DEVICE, "get_status", None, timeout=5)
        return requested.command_id, requested.position

    def sent(self, command_id: str) -> None:
        from commands.device_decisions import MarkSent
        self._decide(MarkSent(command_id, time.time(), "bench"))

    def succeeded(self, command_id: str) -> None:
        from commands.device_decisions import RecordAnswer
        self._decide(RecordAnswer(command_id, {"status": "ok"}, {"value": "ok"}))

    def _decide(self, decision) -> None:
        from commands.context import acting_as
        with acting_as("service:bench"):
            self.control.decide([decision])

    def run(self, rate: float, seconds: float, threads: int = 3) -> int:
        """Open loop at `rate` calls/s over a few threads (one cannot commit fast enough on a busy machine)."""
        with ThreadPoolExecutor(threads) as pool:
            shares = [pool.submit(self._run_share, rate / threads, seconds, i / rate) for i in range(threads)]
            return sum(share.result() for share in shares)

    def _run_share(self, rate: float, seconds: float, offset: float) -> int:
        """Each call's later events are due a few ms after its request, as the gateway would record them."""
        steps = [(0.002, self.sent), (0.008, self.succeeded)] if self.shape == 3 else [(0.008, self.succeeded)]
        start, due, n = time.monotonic() + offset, [], 0
        end = start + seconds
        while True:
            now = time.monotonic()
            next_call = start + n / rate
            if next_call < end and (not due or next_call <= due[0][0]):
                if next_call > now:
                    time.sleep(next_call - now)
                command_id, _ = self.request()
                for i, (delay, _) in enumerate(steps):
                    heapq.heappush(due, (next_call + delay, n, i, command_id))
                n += 1
            elif due:
                at, _, i, command_id = heapq.heappop(due)
                if at > now:
                    time.sleep(at - now)
                steps[i][1](command_id)
            else:
                return n

    def head(self) -> int:
        return self.control.recorder.max_notification_id() or 0

    def close(self) -> None:
        for app in self.apps:
            app.close()


def measure(rig: Rig, catalogue, head: int, action) -> dict:
    """CPU of the three while `action` runs and until the projector has applied `head()`."""
    before, started = rig.cpu(), time.monotonic()
    calls = action()
    target = head()
    if not catalogue.wait_for("history", "DeviceControl", target, timeout=120):
        raise SystemExit(f"the projector did not reach {target}")
    seconds = time.monotonic() - started
    after = rig.cpu()
    used = {name: after[name] - before[name] for name in after}
    return {"calls": calls, "seconds": round(seconds, 2),
            "cpu_s": {k: round(v, 3) for k, v in used.items()},
            "cpu_ms_per_call": {k: round(1000 * v / calls, 3) for k, v in used.items()} if calls else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    from pymongo import MongoClient
    from queries.read_models import ReadModelCatalogue
    nudge_for = None
    if "nudge" in inspect.signature(ReadModelCatalogue.wait_for).parameters:  # not in code from before nudges
        from projections.nudge import nudge_for
    state = Path(tempfile.mkdtemp(prefix="projector-bench-"))
    rig = Rig(state, args.profile, args.postgres)
    writer = None
    result = {"name": args.name, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "config": vars(args), "phases": {}}
    try:
        writer = Writer(rig.settings, args.shape)
        mongo = MongoClient(rig.settings.mongodb_uri, tz_aware=True)
        catalogue = ReadModelCatalogue(mongo["iotcloud"])
        rig.start_projector()
        writer.request()  # the projector's first batch creates the collection and its indexes
        measure(rig, catalogue, writer.head, lambda: 0)
        time.sleep(1)
        say(f"idle {args.idle:.0f} s")
        before = rig.cpu()
        time.sleep(args.idle)
        after = rig.cpu()
        result["phases"]["idle"] = {"seconds": args.idle, "cpu_pct": {
            k: round(100 * (after[k] - before[k]) / args.idle, 2) for k in after}}
        for rate in [float(r) for r in args.rates.split(",") if r]:
            say(f"live {rate:g} calls/s for {args.duration:g} s")
            result["phases"][f"live {rate:g}/s"] = measure(rig, catalogue, writer.head,
                                                          lambda: writer.run(rate, args.duration))
        say(f"lag: {args.lag_calls} calls, each waited for, over {args.lag_background:g} calls/s of others")
        nudge = nudge_for(writer.control) if nudge_for else None  # as the API's ReadYourWrites does
        with ThreadPoolExecutor(1) as background:
            others = background.submit(writer.run, args.lag_background, args.lag_calls / 10 + 1, 2)
            waits = []
            for _ in range(args.lag_calls):
                _, position = writer.request()
                started = time.perf_counter()
                catalogue.wait_for("history", "DeviceControl", position, 10, *([nudge] if nudge else []))
                waits.append(1000 * (time.perf_counter() - started))
                time.sleep(max(0.0, 0.1 - waits[-1] / 1000))
            others.result()
        result["phases"]["lag"] = {"read_your_writes_wait": percentiles(waits),
                                   "background_calls_per_s": args.lag_background}
        say(f"catch-up: {args.catch_up} calls written with the projector stopped")
        rig.projector.send_signal(signal.SIGSTOP)
        try:
            for _ in range(args.catch_up):
                command_id, _ = writer.request()
                if args.shape == 3:
                    writer.sent(command_id)
                writer.succeeded(command_id)
        finally:
            rig.projector.send_signal(signal.SIGCONT)
        result["phases"]["catch-up"] = measure(rig, catalogue, writer.head, lambda: args.catch_up)
        mongo.close()
    finally:
        if writer is not None:
            writer.close()
        rig.stop()
        if args.profile:
            say(f"profiles kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    out = RESULTS / "projector" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["phases"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
